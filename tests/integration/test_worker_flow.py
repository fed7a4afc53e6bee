"""End-to-end behaviour with real worker processes on real stores."""

from __future__ import annotations

import asyncio
import time
import uuid

import pytest

from conveyor import Conveyor, SerializationError, State, TaskExpired, TimeLimitExceeded
from conveyor.brokers import Envelope
from tests.integration import taskapp
from tests.integration.conftest import Workers, trace_lines, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.timeout(90)]


def test_typical_flow_with_process_pool(app: Conveyor, workers: Workers) -> None:
    results = [taskapp.add.delay(i, i) for i in range(20)]
    product = taskapp.async_mul.delay(6, 7)
    assert results[0].status is State.PENDING
    assert app.AsyncResult(str(uuid.uuid4())).status is State.UNKNOWN
    workers.start("-c", "2")
    assert [r.get(timeout=30) for r in results] == [2 * i for i in range(20)]
    assert product.get(timeout=10) == 42
    assert results[0].status is State.SUCCESS


def test_async_producer(app: Conveyor, workers: Workers) -> None:
    async def produce() -> int:
        result = await taskapp.add.adelay(20, 22)
        return await result.aget(timeout=20)

    workers.start("--pool", "async", "-c", "8")
    assert asyncio.run(produce()) == 42


def test_retries_with_backoff_then_success(app: Conveyor, workers: Workers) -> None:
    workers.start("--pool", "thread", "-c", "2")
    result = taskapp.flaky.delay(2)
    assert result.get(timeout=20) == {"retries": 2, "attempt": 3}
    assert taskapp.explicit_retry.delay().get(timeout=20) == 1


def test_exhausted_failure_reraises_and_is_dead_lettered(app: Conveyor, workers: Workers) -> None:
    workers.start("--pool", "thread")
    result = taskapp.always_fails.delay()
    with pytest.raises(ValueError, match="always fails") as caught:
        result.get(timeout=20)
    assert "raise ValueError" in str(caught.value.__cause__)
    assert result.status is State.FAILURE
    (dead,) = wait_for(lambda: app.broker.dead_letters("default"))
    assert dead.envelope.id == result.id
    assert "ValueError" in dead.reason


def test_countdown_is_not_run_early(app: Conveyor, workers: Workers) -> None:
    workers.start("--pool", "thread")
    sent = time.time()
    result = taskapp.started_at.apply_async(("late",), countdown=1.5)
    started = result.get(timeout=20)
    assert started >= sent + 1.5


def test_expired_task_is_not_run(app: Conveyor, workers: Workers, env: dict[str, str]) -> None:
    result = taskapp.started_at.apply_async(("expired",), expires=0.3)
    time.sleep(0.6)
    workers.start("--pool", "thread")
    with pytest.raises(TaskExpired):
        result.get(timeout=20)
    assert result.status is State.EXPIRED
    assert trace_lines(env, "started") == []


def test_priority_order_nine_first(app: Conveyor, workers: Workers, env: dict[str, str]) -> None:
    sent = [taskapp.started_at.apply_async((f"p{p}-{i}",), priority=p)
            for i in range(2) for p in (0, 5, 9)]
    workers.start("--pool", "thread", "-c", "1")
    for result in sent:
        result.get(timeout=20)
    assert trace_lines(env, "started") == ["p9-0", "p9-1", "p5-0", "p5-1", "p0-0", "p0-1"]


def test_bad_messages_are_dead_lettered_and_worker_keeps_going(
    app: Conveyor, workers: Workers
) -> None:
    garbage = Envelope(str(uuid.uuid4()), "default", b"\xff{not json")
    pickled = Envelope(str(uuid.uuid4()), "default", b"\x80\x04K\x01.",
                       "application/x-python-pickle")
    unknown = app.build_message("no.such.task", None, (), {})
    app.broker.publish([garbage, pickled, app.envelope(unknown)])
    workers.start("--pool", "thread")
    assert taskapp.add.delay(1, 1).get(timeout=20) == 2
    reasons = {d.envelope.id: d.reason for d in wait_for(
        lambda: len(app.broker.dead_letters()) == 3 and app.broker.dead_letters())}
    assert "MalformedMessage" in reasons[garbage.id]
    assert "ContentTypeRefused" in reasons[pickled.id]
    assert "no task named 'no.such.task'" in reasons[unknown.id]


def test_unserializable_argument_fails_in_the_producer(app: Conveyor) -> None:
    with pytest.raises(SerializationError, match="object"):
        taskapp.add.delay(object(), 1)  # type: ignore[arg-type]
    assert app.broker.stats("default").ready == 0


@pytest.mark.parametrize("task", [taskapp.overrun, taskapp.async_overrun])
def test_time_limit_stops_the_task_and_the_pool_recovers(
    app: Conveyor, workers: Workers, task: object
) -> None:
    workers.start("-c", "1")
    result = task.delay()  # type: ignore[attr-defined]
    with pytest.raises(TimeLimitExceeded):
        result.get(timeout=30)
    assert taskapp.add.delay(2, 2).get(timeout=30) == 4


def test_revoked_task_is_skipped(app: Conveyor, workers: Workers, env: dict[str, str]) -> None:
    result = taskapp.started_at.delay("revoked")
    assert result.revoke()
    workers.start("--pool", "thread")
    assert taskapp.add.delay(1, 2).get(timeout=20) == 3
    assert result.status is State.REVOKED
    assert trace_lines(env, "started") == []


def test_prefetch_holds_extra_messages_but_runs_one_at_a_time(
    app: Conveyor, workers: Workers, env: dict[str, str]
) -> None:
    results = [taskapp.slow.delay(0.5, f"t{i}") for i in range(5)]
    workers.start("--pool", "thread", "-c", "1", "--prefetch", "3")
    wait_for(lambda: app.broker.stats("default").in_flight == 3 and trace_lines(env, "runs"))
    assert len(trace_lines(env, "runs")) == 1  # three held, one running
    assert [r.get(timeout=30) for r in results] == [f"t{i}" for i in range(5)]
