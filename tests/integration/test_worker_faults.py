"""Crashes and signals: SIGKILL, SIGTERM, SIGSTOP against real worker processes."""

from __future__ import annotations

import os
import signal
import time

import pytest

from conveyor import Conveyor, State
from tests.integration import taskapp
from tests.integration.conftest import Workers, trace_lines, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.timeout(90)]


def test_sigkill_mid_task_reruns_elsewhere(
    app: Conveyor, workers: Workers, env: dict[str, str]
) -> None:
    victim = workers.start("--pool", "thread", "-c", "1", lease=1.5)
    result = taskapp.slow.delay(1.0, "k")
    wait_for(lambda: trace_lines(env, "runs"))
    os.kill(victim.pid, signal.SIGKILL)
    victim.wait()
    killed_at = time.monotonic()
    workers.start("--pool", "thread", "-c", "1", lease=1.5)
    assert result.get(timeout=30) == "k"
    assert time.monotonic() - killed_at < 10
    runs = trace_lines(env, "runs")
    assert len(runs) == 2 and runs[1].endswith(" 2")  # the second run is attempt 2
    wait_for(lambda: app.broker.stats("default").in_flight == 0)  # acked after the result


def test_long_task_is_not_duplicated_while_its_worker_lives(
    app: Conveyor, workers: Workers, env: dict[str, str]
) -> None:
    workers.start("--pool", "thread", "-c", "1", lease=1.0)
    workers.start("--pool", "thread", "-c", "1", lease=1.0)
    result = taskapp.slow.delay(3.5, "long")
    assert result.get(timeout=30) == "long"
    assert len(trace_lines(env, "runs")) == 1


def test_sigterm_finishes_running_and_gives_back_the_rest(
    app: Conveyor, workers: Workers, env: dict[str, str]
) -> None:
    worker = workers.start("--pool", "thread", "-c", "1", "--grace", "20")
    running = taskapp.slow.delay(1.5, "running")
    wait_for(lambda: trace_lines(env, "runs"))
    queued = [taskapp.slow.delay(0.1, f"q{i}") for i in range(3)]
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(20) == 0
    assert running.status is State.SUCCESS
    stats = app.broker.stats("default")
    assert (stats.ready, stats.in_flight) == (3, 0)
    assert all(r.status is State.PENDING for r in queued)


def test_second_signal_stops_fast_and_loses_nothing(
    app: Conveyor, workers: Workers, env: dict[str, str]
) -> None:
    worker = workers.start("--pool", "thread", "-c", "1", "--grace", "60")
    result = taskapp.slow.delay(30, "endless")
    wait_for(lambda: trace_lines(env, "runs"))
    stopped = time.monotonic()
    worker.send_signal(signal.SIGTERM)
    time.sleep(0.2)
    worker.send_signal(signal.SIGTERM)
    worker.wait(10)
    assert time.monotonic() - stopped < 5
    stats = app.broker.stats("default")
    assert (stats.ready, stats.in_flight) == (1, 0)  # given back at once, not after the lease
    assert result.status is State.STARTED


def test_sigstop_past_the_lease_leaves_exactly_one_outcome(
    app: Conveyor, workers: Workers, env: dict[str, str]
) -> None:
    zombie = workers.start("--pool", "thread", "-c", "1", lease=1.0)
    result = taskapp.slow.delay(1.5, "stopped")
    wait_for(lambda: trace_lines(env, "runs"))
    os.kill(zombie.pid, signal.SIGSTOP)
    try:
        workers.start("--pool", "thread", "-c", "1", lease=1.0)
        wait_for(lambda: len(trace_lines(env, "runs")) == 2, timeout=20)
    finally:
        os.kill(zombie.pid, signal.SIGCONT)
    assert result.get(timeout=20) == "stopped"
    wait_for(lambda: len(trace_lines(env, "done")) == 2, timeout=20)
    time.sleep(0.5)
    outcome = result.outcome()
    assert outcome is not None and outcome.state is State.SUCCESS
    attempt = app.backend.get(result.id)
    assert attempt is not None and attempt.attempt == 2  # the zombie's write was refused
    stats = app.broker.stats("default")
    assert (stats.ready, stats.in_flight, stats.dead) == (0, 0, 0)


def children_of(pid: int) -> list[int]:
    with open(f"/proc/{pid}/task/{pid}/children") as fh:
        return [int(p) for p in fh.read().split()]


def test_process_pool_replaces_a_killed_child_and_stops_gracefully(
    app: Conveyor, workers: Workers, env: dict[str, str]
) -> None:
    supervisor = workers.start("-c", "2", "--grace", "20", lease=1.5)
    def two_children() -> list[int]:
        found = children_of(supervisor.pid)
        return found if len(found) == 2 else []

    first = wait_for(two_children)
    result = taskapp.slow.delay(1.0, "pooled")
    wait_for(lambda: trace_lines(env, "runs"))
    runner = int(trace_lines(env, "runs")[0].split()[1])
    os.kill(runner, signal.SIGKILL)
    assert result.get(timeout=30) == "pooled"
    replaced = wait_for(lambda: runner not in two_children() and two_children())
    assert set(first) - {runner} <= set(replaced)
    running = taskapp.slow.delay(1.0, "finishing")
    wait_for(lambda: len(trace_lines(env, "runs")) == 3)
    supervisor.send_signal(signal.SIGTERM)
    assert supervisor.wait(20) == 0
    assert running.status is State.SUCCESS


def test_children_stop_when_their_supervisor_is_killed(
    app: Conveyor, workers: Workers, env: dict[str, str]
) -> None:
    supervisor = workers.start("-c", "2")
    assert taskapp.add.delay(1, 1).get(timeout=30) == 2
    children = [int(p) for p in os.popen(f"pgrep -P {supervisor.pid}").read().split()]
    assert len(children) == 2
    os.kill(supervisor.pid, signal.SIGKILL)
    supervisor.wait()

    def gone() -> bool:
        return not any(os.path.exists(f"/proc/{pid}") and "Z" not in
                       open(f"/proc/{pid}/stat").read().split()[2] for pid in children)

    wait_for(gone, timeout=15)  # no orphan keeps consuming
