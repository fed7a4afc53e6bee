"""A worker started before its store waits for it, then consumes; a signal ends the wait."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from tests.integration import taskapp
from tests.integration.conftest import ROOT, wait_for
from tests.redis_servers import Node, free_port

pytestmark = [pytest.mark.slow, pytest.mark.timeout(60)]


@pytest.fixture
def down(tmp_path: Path) -> Iterator[tuple[Node, str]]:
    """A private redis-server, not started yet, and the URL of it (with a password)."""
    port = free_port()
    node = Node(tmp_path / "redis", port, "--requirepass", "s3cret-pw")
    yield node, f"redis://:s3cret-pw@127.0.0.1:{port}/0"
    node.kill()


def start_worker(url: str, log: Path, *args: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "CONVEYOR_BROKER_URL": url, "PYTHONPATH": str(ROOT)}
    argv = [sys.executable, "-m", "conveyor", "worker", "-A", "tests.integration.taskapp",
            "-l", "info", "-c", "1", *args]
    with log.open("wb") as out:
        return subprocess.Popen(argv, env=env, cwd=ROOT, stderr=out, start_new_session=True)


def _answers(url: str) -> bool:
    client = redis.Redis.from_url(url, socket_timeout=1)
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False
    finally:
        client.close()


@pytest.mark.parametrize("pool", ["thread", "process"])
def test_worker_waits_for_a_store_that_is_not_up_yet(
    down: tuple[Node, str], tmp_path: Path, pool: str
) -> None:
    node, url = down
    log = tmp_path / "worker.log"
    worker = start_worker(url, log, "--pool", pool)
    try:
        wait_for(lambda: log.read_text().count("trying again in") >= 2, timeout=20)
        assert worker.poll() is None and "s3cret-pw" not in log.read_text()
        node.launch()
        wait_for(lambda: _answers(url), timeout=20)
        taskapp.app.broker_url = taskapp.app.backend_url = url
        try:
            assert taskapp.add.delay(2, 3).get(timeout=30) == 5
        finally:
            taskapp.app.close()
    finally:
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(20) == 0


def test_a_signal_ends_the_wait(down: tuple[Node, str], tmp_path: Path) -> None:
    _, url = down
    log = tmp_path / "worker.log"
    worker = start_worker(url, log, "--pool", "thread")
    wait_for(lambda: "trying again in" in log.read_text(), timeout=20)
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(10) == 0
