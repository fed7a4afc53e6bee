"""A broker password never shows: not in the worker's log, events, heartbeats or the CLI."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.conftest import ROOT, wait_for
from tests.integration.test_redis_faults import PrivateRedis

pytestmark = [pytest.mark.slow, pytest.mark.timeout(90)]
PASSWORD = "s3cret-hunter2"


def test_password_appears_nowhere(tmp_path: Path) -> None:
    server = PrivateRedis(tmp_path, "--requirepass", PASSWORD).start()
    url = f"redis://:{PASSWORD}@127.0.0.1:{server.port}/0?prefix=secrets"
    trace = tmp_path / "trace"
    trace.mkdir()
    env = {**os.environ, "CONVEYOR_BROKER_URL": url, "CONVEYOR_TEST_DIR": str(trace),
           "PYTHONPATH": str(ROOT)}
    log = tmp_path / "worker.log"
    cli = [sys.executable, "-m", "conveyor"]
    app_args = ["-A", "tests.integration.taskapp"]
    worker = subprocess.Popen([*cli, "worker", *app_args, "-c", "1", "-l", "debug",
                               "--logfile", str(log)], env=env, cwd=ROOT)
    try:
        sent = subprocess.run([sys.executable, "-c", (
            "from tests.integration import taskapp\n"
            "print(taskapp.add.delay(1, 2).get(timeout=20))\n"
            "print(taskapp.app)")], env=env, cwd=ROOT, capture_output=True, text=True,
            timeout=60)
        assert sent.stdout.splitlines()[0] == "3", sent.stderr
        wait_for(lambda: "SUCCESS" in log.read_text(), timeout=20)
        shown = [sent.stdout, sent.stderr, log.read_text()]
        for args in (["events", *app_args, "--after", "0", "--json", "--count", "4"],
                     ["inspect", *app_args], ["dlq", "list", *app_args]):
            done = subprocess.run([*cli, *args], env=env, cwd=ROOT, capture_output=True,
                                  text=True, timeout=30)
            assert done.returncode == 0, done.stderr
            shown += [done.stdout, done.stderr]
    finally:
        worker.terminate()
        worker.wait(20)
        server.kill()
    text = "\n".join(shown)
    assert PASSWORD not in text
    assert ":***@" in text  # the URL is shown, masked (banner, heartbeats, the app's repr)
