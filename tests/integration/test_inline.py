"""Short sync tasks on the loop's thread of a process-pool child (conveyor.worker.inline), and
what keeps that safe: the lease keeper, and tasks that turn out long going back to the pool."""

from __future__ import annotations

import time

import pytest

from conveyor import Conveyor
from tests.children import interrupt_twice
from tests.integration import taskapp
from tests.integration.conftest import Workers, trace_lines, wait_for

pytestmark = pytest.mark.timeout(90)


def _warm(workers: Workers, app: Conveyor) -> list[str]:
    """Runs of a short task until one runs on the loop's thread (the first goes to the pool)."""
    ran = [taskapp.where.delay(0.0).get(timeout=30)]
    while ran[-1] != "loop" and len(ran) < 10:
        ran.append(taskapp.where.delay(0.0).get(timeout=10))
    return ran


def test_a_short_sync_task_runs_on_the_loop_thread_after_its_first_run(
        workers: Workers, app: Conveyor) -> None:
    workers.start("-c", "1")
    ran = _warm(workers, app)
    assert ran[0] == "pool"
    assert ran[-1] == "loop", ran
    assert taskapp.add.delay(2, 3).get(timeout=10) == 5


def test_a_sync_task_may_run_an_event_loop_of_its_own(workers: Workers, app: Conveyor) -> None:
    """On the loop's thread a task sees no running loop, as in a thread: asyncio.run works."""
    workers.start("-c", "1")
    assert _warm(workers, app)[-1] == "loop"
    ran = [taskapp.runs_a_loop.delay(i).get(timeout=10) for i in range(8)]
    assert [value for value, _ in ran] == [0, 2, 4, 6, 8, 10, 12, 14]
    assert "loop" in [where for _, where in ran], ran
    assert taskapp.add.delay(2, 2).get(timeout=10) == 4


def test_a_task_turning_long_on_the_loop_thread_keeps_its_lease(
        workers: Workers, app: Conveyor, env: dict[str, str]) -> None:
    """Lease 1 s: a 5 s call on the loop's thread would be handed to the second worker after
    a second but for the keeper. It runs once, and its next run goes to the pool again."""
    workers.start("-c", "1", lease=1.0)
    assert _warm(workers, app)[-1] == "loop"
    long = taskapp.where.delay(5.0)
    wait_for(lambda: any(line.startswith(long.id) for line in trace_lines(env, "where")))
    started = time.monotonic()
    workers.start("-c", "1", lease=1.0)
    assert taskapp.add.delay(1, 1).get(timeout=30) == 2  # the second worker consumes
    assert time.monotonic() - started < 4.5, "the second worker was not up in time"
    assert long.get(timeout=30) == "loop"
    runs = [line for line in trace_lines(env, "where") if line.startswith(long.id)]
    assert len(runs) == 1, runs
    interrupt_twice(workers.procs[1:], 10)  # what follows runs on the first worker
    assert taskapp.where.delay(0.0).get(timeout=10) == "pool"
