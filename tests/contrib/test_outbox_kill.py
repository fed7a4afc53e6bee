"""The transactional outbox survives SIGKILL between the commit and the publish, and between
the publish and the outbox's clean-up: every committed task runs, each exactly once. Real
processes, on SQLite and Redis brokers, with the application's rows in SQLite (SQLAlchemy)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from conveyor import Conveyor
from conveyor.brokers import queue_admin
from conveyor.contrib.outbox import CRASH_ENV
from conveyor.states import State
from tests.stores import store_url

pytest.importorskip("sqlalchemy")
ROOT = Path(__file__).resolve().parents[2]
COUNT = 20


@pytest.fixture(params=["sqlite", "redis"])
def env(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[dict[str, str]]:
    with store_url(request.param, tmp_path) as url:
        yield {**os.environ, "CONVEYOR_BROKER_URL": url, "CONVEYOR_TEST_DIR": str(tmp_path),
               "PYTHONPATH": str(ROOT)}


def run(env: dict[str, str], *args: str,
        crash: str | None = None) -> subprocess.CompletedProcess[str]:
    given = {**env, **({CRASH_ENV: crash} if crash else {})}
    return subprocess.run([sys.executable, "-m", "tests.contrib.outbox_app", *args], env=given,
                          cwd=ROOT, capture_output=True, text=True, timeout=120, check=False)


def pending_rows(env: dict[str, str]) -> int:
    import sqlite3

    with sqlite3.connect(Path(env["CONVEYOR_TEST_DIR"]) / "app.db") as db:
        return int(db.execute("select count(*) from conveyor_outbox").fetchone()[0])


@pytest.mark.slow
def test_killed_between_commit_and_publish_nothing_lost_nothing_twice(
        env: dict[str, str]) -> None:
    app = Conveyor("outboxtest", broker=env["CONVEYOR_BROKER_URL"])
    try:
        written = run(env, "write", str(COUNT), crash="before_publish")
        assert written.returncode == -signal.SIGKILL, written.stderr
        ids = written.stdout.split()
        assert len(ids) == COUNT and pending_rows(env) == COUNT  # committed, not published
        assert {app.AsyncResult(i).status for i in ids} == {State.UNKNOWN}

        relayed = run(env, "relay", crash="after_publish")  # published, rows not yet removed
        assert relayed.returncode == -signal.SIGKILL, relayed.stderr
        assert pending_rows(env) == COUNT
        assert {app.AsyncResult(i).status for i in ids} == {State.PENDING}

        finished = run(env, "relay")  # finds every id already sent: removes, sends nothing
        assert finished.returncode == 0, finished.stderr
        assert pending_rows(env) == 0
        assert queue_admin(app.broker).stats("default").ready == COUNT  # not 2 * COUNT

        worker = subprocess.Popen(
            [sys.executable, "-m", "conveyor", "worker", "-A", "tests.contrib.outbox_app",
             "--pool", "thread", "-c", "2", "-l", "warning"], env=env, cwd=ROOT,
            start_new_session=True)
        try:
            assert sorted(app.AsyncResult(i).get(timeout=60) for i in ids) == list(range(COUNT))
            _wait_empty(app)
        finally:
            worker.send_signal(signal.SIGTERM)
            worker.wait(30)
        runs = (Path(env["CONVEYOR_TEST_DIR"]) / "runs").read_text().split()
        assert sorted(int(n) for n in runs) == list(range(COUNT))  # each once
    finally:
        app.close()


def _wait_empty(app: Conveyor) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        stats = queue_admin(app.broker).stats("default")
        if not (stats.ready or stats.in_flight or stats.delayed):
            return
        time.sleep(0.1)
    raise AssertionError("the queue did not empty")
