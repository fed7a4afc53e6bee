"""Control features in one process on the memory store: a real Worker on a real event loop
(the multi-process cases are in tests/integration/test_control.py)."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest

from conveyor import (
    Conveyor,
    SoftTimeLimitExceeded,
    State,
    TaskRevoked,
    TimeLimitExceeded,
    Worker,
)
from conveyor.errors import ConfigurationError
from conveyor.rates import Rate, parse_optional_rate, parse_rate
from conveyor.testing import run_queued
from conveyor.worker.groups import QueueGroup, group_prefetch, parse_queues, plan_groups

pytestmark = pytest.mark.timeout(30)


def make_app(**settings: Any) -> Conveyor:
    return Conveyor("ctl", broker=f"memory://{uuid.uuid4().hex}", **settings)


async def until(check: Any, timeout: float = 5.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:  # a test's wait for an outcome, not product polling
        value = check()
        if value:
            return value
        await asyncio.sleep(0.02)
    raise AssertionError("condition not met in time")


async def result_of(app: Conveyor, task_id: str, timeout: float = 5.0) -> Any:
    record = await app.backend.await_final(task_id, timeout)
    assert record is not None and record.final, f"{task_id} not final"
    return app.AsyncResult(task_id)


class Running:
    """A Worker running on this loop until the test leaves."""

    def __init__(self, worker: Worker) -> None:
        self.worker = worker
        self.task = asyncio.ensure_future(worker.run())

    async def stop(self) -> None:
        await self.worker.stop(fast=True)
        await asyncio.wait_for(self.task, 10)


@pytest.fixture
async def started() -> AsyncIterator[list[Running]]:
    runs: list[Running] = []
    yield runs
    for run in runs:
        await run.stop()


def start(runs: list[Running], app: Conveyor, queues: tuple[str, ...] = ("default",),
          **kw: Any) -> Worker:
    worker = Worker(app, queues, **kw)
    runs.append(Running(worker))
    return worker


# -- parsing ----------------------------------------------------------------------------------

def test_rates_parse_and_refuse_clearly() -> None:
    assert parse_rate("100/m") == Rate(100, 60.0)
    assert parse_rate("5/s") == parse_rate("5") == Rate(5, 1.0)
    assert parse_rate("10/hour") == Rate(10, 3600.0)
    assert str(parse_rate("7/min")) == "7/m"
    assert parse_optional_rate("off") is None and parse_optional_rate(None) is None
    for bad, why in (("x/s", "whole number"), ("5/d", "unknown unit"), ("0/s", "at least 1")):
        with pytest.raises(ConfigurationError, match=why):
            parse_rate(bad)
    with pytest.raises(ConfigurationError, match="rate"):
        make_app().task(rate_limit="fast")(lambda: None)


def test_queue_groups_from_the_command_line() -> None:
    items = parse_queues("emails:4, reports:1,default,low")
    assert items == [("emails", 4), ("reports", 1), ("default", None), ("low", None)]
    assert plan_groups(items, 8, cpus=2) == [
        QueueGroup(("emails",), 4), QueueGroup(("reports",), 1),
        QueueGroup(("default", "low"), 3)]
    assert plan_groups(items, None, cpus=2)[-1] == QueueGroup(("default", "low"), 1)
    assert plan_groups(parse_queues("a:2,b:3"), None, cpus=16) == [
        QueueGroup(("a",), 2), QueueGroup(("b",), 3)]
    assert group_prefetch(QueueGroup(("a",), 2), 40, 8) == 10
    for spec, c, why in (("a:4,b", 4, "no slot for b"), ("a:0", None, "whole number"),
                         ("a:2,a", None, "more than once"), ("a:2", 5, "does not match")):
        with pytest.raises(ConfigurationError, match=why):
            plan_groups(parse_queues(spec), c, cpus=2)


# -- time limits --------------------------------------------------------------------------------

def test_a_soft_limit_is_caught_by_async_and_thread_tasks() -> None:
    app = make_app()

    @app.task(soft_time_limit=0.2, time_limit=5)
    async def tidy_async() -> str:
        try:
            await asyncio.sleep(10)
        except SoftTimeLimitExceeded:
            await asyncio.sleep(0.01)  # cleaning up may still await
            return "cleaned up"
        return "not interrupted"

    @app.task(soft_time_limit=0.2, time_limit=5)
    def tidy_thread() -> str:
        try:
            for _ in range(200):
                time.sleep(0.02)
        except SoftTimeLimitExceeded:
            return "cleaned up"
        return "not interrupted"

    first, second = tidy_async.delay(), tidy_thread.delay()
    started = time.monotonic()
    run_queued(app)
    assert first.get(timeout=1) == second.get(timeout=1) == "cleaned up"
    assert time.monotonic() - started < 3


def test_per_call_limits_override_the_task_and_an_uncaught_soft_limit_fails() -> None:
    app = make_app()

    @app.task(time_limit=30)
    async def sleepy(seconds: float) -> str:
        await asyncio.sleep(seconds)
        return "woke"

    hard = sleepy.apply_async((10,), time_limit=timedelta(milliseconds=200))
    soft = sleepy.apply_async((10,), soft_time_limit=0.2)
    fine = sleepy.apply_async((0.01,), soft_time_limit=5)
    run_queued(app, raise_errors=False)
    with pytest.raises(TimeLimitExceeded):
        hard.get(timeout=1)
    with pytest.raises(SoftTimeLimitExceeded):
        soft.get(timeout=1)
    assert fine.get(timeout=1) == "woke"


# -- unique tasks -------------------------------------------------------------------------------

def test_a_unique_key_returns_the_first_handle_until_the_task_ends() -> None:
    app = make_app()

    @app.task(unique_key=lambda report_id: f"report:{report_id}", unique_for=60)
    def report(report_id: int) -> int:
        return report_id

    @app.task
    def adhoc(n: int) -> int:
        return n

    first = report.delay(42)
    assert report.delay(42) == first and report.delay(7) != first
    picked = adhoc.apply_async((1,), unique_key="nightly", unique_for=timedelta(minutes=10))
    assert adhoc.apply_async((2,), unique_key="nightly").id == picked.id
    assert app.broker.stats("default").ready == 3
    run_queued(app)
    assert first.get(timeout=1) == 42 and picked.get(timeout=1) == 1
    assert report.delay(42) != first  # the key was freed when the task ended


def test_unique_enqueue_from_concurrent_threads_queues_one() -> None:
    app = make_app()

    @app.task(unique_key=True)
    def once(n: int) -> int:
        return n

    barrier, ids = threading.Barrier(8), []

    def produce() -> None:
        barrier.wait()
        ids.append(once.delay(5).id)

    threads = [threading.Thread(target=produce) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(ids)) == 1 and len(ids) == 8
    assert app.broker.stats("default").ready == 1


# -- revoke, rate limits, concurrency keys, per-queue slots with a running worker ---------------

async def test_revoke_before_start_and_terminate_while_running(started: list[Running]) -> None:
    app = make_app()
    ran: list[str] = []

    @app.task
    async def job(tag: str, seconds: float) -> str:
        ran.append(tag)
        await asyncio.sleep(seconds)
        return tag

    later = job.apply_async(("later", 0), countdown=0.5)
    assert app.control.revoke(later.id) == [later.id]
    start(started, app, concurrency=2)
    endless = job.delay("endless", 60)
    await until(lambda: "endless" in ran)
    assert endless.revoke(terminate=True)
    assert (await result_of(app, endless.id, 3)).status is State.REVOKED
    await asyncio.sleep(0.8)
    assert "later" not in ran and later.status is State.REVOKED
    with pytest.raises(TaskRevoked):
        later.get(timeout=0)
    assert (await result_of(app, job.delay("next", 0).id)).get(timeout=0) == "next"


async def test_rate_limit_defers_without_retrying_and_changes_at_run_time(
    started: list[Running]
) -> None:
    app = make_app(heartbeat_interval=0.1)
    starts: list[float] = []

    @app.task(bind=True, rate_limit="2/s")
    async def ping(self: Any) -> int:
        starts.append(time.monotonic())
        return int(self.request.retries)

    start(started, app, concurrency=4)
    first = [ping.delay() for _ in range(4)]
    await until(lambda: len(starts) == 4, 5)
    assert starts[3] - starts[0] > 0.9  # two per second
    assert [(await result_of(app, r.id)).get(timeout=0) for r in first] == [0, 0, 0, 0]
    app.control.rate_limit(ping.name, "off")
    await asyncio.sleep(0.2)  # the broadcast reaches the worker
    began = time.monotonic()
    for r in [ping.delay() for _ in range(6)]:
        await result_of(app, r.id)
    assert time.monotonic() - began < 0.8
    await asyncio.sleep(0.3)  # the next heartbeat carries the counters
    (stats,) = await app.control.inspect().astats()
    assert stats["processed"] == 10  # waits for the rate are not counted


async def test_concurrency_key_limits_runs_per_key_and_others_pass(
    started: list[Running]
) -> None:
    app = make_app()
    active: dict[str, int] = {}
    peak: dict[str, int] = {}
    order: list[str] = []

    @app.task(concurrency_key=lambda tenant, n: tenant, concurrency_limit=2)
    async def work(tenant: str, n: int) -> None:
        active[tenant] = active.get(tenant, 0) + 1
        peak[tenant] = max(peak.get(tenant, 0), active[tenant])
        order.append(tenant)
        await asyncio.sleep(0.15)
        active[tenant] -= 1

    start(started, app, concurrency=6)
    burst = [work.delay("big", i) for i in range(8)] + [work.delay("small", 0)]
    for r in burst:
        await result_of(app, r.id, 10)
    assert peak == {"big": 2, "small": 1}
    assert order.index("small") < 4  # not behind the burst's eight


async def test_per_queue_slots_keep_a_busy_queue_from_blocking_another(
    started: list[Running]
) -> None:
    app = make_app()
    spans: list[tuple[str, float, float]] = []

    @app.task
    async def step(kind: str, seconds: float) -> None:
        began = time.monotonic()
        await asyncio.sleep(seconds)
        spans.append((kind, began, time.monotonic()))

    groups = [QueueGroup(("reports",), 1), QueueGroup(("emails",), 2)]
    worker = start(started, app, ("reports", "emails"), concurrency=3, groups=groups)
    reports = [step.apply_async(("report", 0.3), queue="reports") for _ in range(3)]
    emails = [step.apply_async(("email", 0.02), queue="emails") for _ in range(10)]
    for r in emails:
        await result_of(app, r.id)
    # Every e-mail was done while the first report still ran: the reports' slot is their own.
    assert not [kind for kind, _, _ in spans if kind == "report"]
    for r in reports:
        await result_of(app, r.id)
    runs = sorted((b, e) for kind, b, e in spans if kind == "report")
    assert all(runs[i][1] <= runs[i + 1][0] for i in range(len(runs) - 1))  # one at a time
    assert [g["slots"] for g in worker.lanes()] == [1, 2]


async def test_inspect_active_registered_and_scheduled(started: list[Running]) -> None:
    app = make_app()

    @app.task
    async def hold(seconds: float) -> None:
        await asyncio.sleep(seconds)

    start(started, app, concurrency=2, name="inspected")
    running = hold.delay(5)
    later = hold.apply_async((0,), countdown=300)
    await asyncio.sleep(0.1)
    inspect = app.control.inspect()
    await until(lambda: any(p["active"] for p in cmd_run(inspect.aactive())), 5)
    (proc,) = await inspect.aactive()
    assert proc["worker"] == "inspected" and proc["active"][0]["id"] == running.id
    (reg,) = await inspect.aregistered(timeout=2)
    assert hold.name in reg["tasks"]
    (row,) = inspect.scheduled()
    assert (row["id"], row["task"]) == (later.id, hold.name)
    assert [p["worker"] for p in await app.control.aping(timeout=2)] == ["inspected"]


def cmd_run(coro: Any) -> Any:
    """Run a coroutine from a sync check inside the loop (the check polls the test's state)."""
    result: list[Any] = []
    thread = threading.Thread(target=lambda: result.append(asyncio.run(coro)))
    thread.start()
    thread.join()
    return result[0]


async def test_thread_pool_terminate_and_hard_limit_raise_inside_the_thread(
    started: list[Running]
) -> None:
    app = make_app()
    ended: dict[str, str] = {}

    @app.task(time_limit=0.3)
    def loops(tag: str) -> None:
        try:
            for _ in range(500):
                time.sleep(0.01)  # between sleeps the thread runs Python: it can be reached
        except BaseException as exc:
            ended[tag] = type(exc).__name__
            raise
        ended[tag] = "finished"

    @app.task
    def loops_long(tag: str) -> None:
        loops.fn(tag)

    start(started, app, concurrency=2, pool="thread")
    limited = loops.delay("limited")
    terminated = loops_long.delay("terminated")
    await until(lambda: terminated.status is State.STARTED)
    app.control.revoke(terminated, terminate=True)
    assert (await result_of(app, terminated.id)).status is State.REVOKED
    with pytest.raises(TimeLimitExceeded):
        (await result_of(app, limited.id)).get(timeout=0)
    await until(lambda: len(ended) == 2)
    assert ended == {"limited": "TimeLimitExceeded", "terminated": "TaskTerminated"}


async def test_a_hard_limit_does_not_wait_for_a_coroutine_that_swallows_cancellation(
    started: list[Running]
) -> None:
    app = make_app()

    @app.task(time_limit=0.2)
    async def stubborn() -> str:
        for _ in range(3):
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.sleep(1)
        return "outlasted"

    start(started, app)
    result = stubborn.delay()
    began = time.monotonic()
    with pytest.raises(TimeLimitExceeded):
        (await result_of(app, result.id)).get(timeout=0)
    assert time.monotonic() - began < 1
