"""Events from real worker processes, followed live with ``conveyor events``."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import time

import pytest

from conveyor import Conveyor
from conveyor.brokers import EventLog
from conveyor.events import alive
from tests.integration import taskapp
from tests.integration.conftest import ROOT, WITH_AMQP, Workers, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.timeout(90)]


def _follow(env: dict[str, str], *args: str) -> subprocess.Popen[str]:
    argv = [sys.executable, "-m", "conveyor", "events", "-A", "tests.integration.taskapp",
            "--json", *args]
    return subprocess.Popen(argv, env=env, cwd=ROOT, stdout=subprocess.PIPE, text=True)


@pytest.mark.parametrize("stores", WITH_AMQP, indirect=True)
def test_conveyor_events_shows_a_tasks_life_live(
    app: Conveyor, workers: Workers, env: dict[str, str]
) -> None:
    workers.start("--pool", "thread", "--name", "w-events")
    wait_for(lambda: _heartbeats(app))  # the worker is online before the follower starts
    follower = _follow(env, "--kind", "task-*", "--count", "3")
    time.sleep(1.0)  # the follower starts from "now"
    result = taskapp.add.delay(2, 3)
    assert result.get(timeout=20) == 5
    out, _ = follower.communicate(timeout=20)
    seen = [json.loads(line) for line in out.splitlines()]
    assert [e["kind"] for e in seen] == ["task-received", "task-started", "task-succeeded"]
    assert {e["task_id"] for e in seen} == {result.id}
    assert seen[0]["worker"] == "w-events" and seen[0]["args"] == "(2, 3)"
    assert seen[2]["runtime"] >= 0 and seen[2]["result"] == "5"


def test_failures_carry_the_error_and_history_can_be_replayed(
    app: Conveyor, workers: Workers, env: dict[str, str]
) -> None:
    workers.start("--pool", "thread")
    with pytest.raises(ValueError):
        taskapp.always_fails.delay().get(timeout=20)
    follower = _follow(env, "--after", "0", "--kind", "task-failed", "--count", "1")
    out, _ = follower.communicate(timeout=20)
    (failed,) = [json.loads(line) for line in out.splitlines()]
    assert failed["error"] == "ValueError" and "always fails" in failed["message"]


def test_heartbeats_show_what_runs_and_a_killed_worker_goes_silent(
    app: Conveyor, workers: Workers
) -> None:
    workers.env["CONVEYOR_HEARTBEAT_INTERVAL"] = "0.5"  # silent after three missed beats
    proc = workers.start("--pool", "thread", "-c", "2", "--name", "w-beat")
    running = taskapp.slow.delay(3.0, "beat")
    beat = wait_for(lambda: [e for e in _heartbeats(app) if e.fields["active"]], timeout=15)[0]
    assert beat.worker == "w-beat" and beat.fields["concurrency"] == 2
    assert beat.fields["active"][0]["id"] == running.id
    assert beat.fields["queues"] == ["default"] and beat.fields["pool"] == "thread"
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    interval = float(beat.fields["interval"])
    assert interval == 0.5
    time.sleep(3 * interval + 1.5)
    assert alive(_heartbeats(app), time.time()) == []


def test_a_graceful_stop_says_offline(app: Conveyor, workers: Workers) -> None:
    proc = workers.start("--pool", "thread")
    wait_for(lambda: _heartbeats(app))
    proc.send_signal(signal.SIGTERM)
    proc.wait(15)
    assert _heartbeats(app) == []


def _heartbeats(app: Conveyor) -> list:  # type: ignore[type-arg]
    log = app.backend
    assert isinstance(log, EventLog)
    return asyncio.run(log.heartbeats())
