"""Time as a parameter: ETAs, leases, expiry and result TTLs moved by a fake clock, not sleeps."""

from __future__ import annotations

import asyncio
import uuid

from conveyor import Conveyor, State
from conveyor.brokers import Envelope, StoredResult
from conveyor.brokers.memory import MemoryStore
from conveyor.clock import FakeClock
from conveyor.testing import run_queued


def env(**kw: object) -> Envelope:
    return Envelope(str(uuid.uuid4()), "q", b"x", **kw)  # type: ignore[arg-type]


async def test_an_eta_is_due_only_once_the_clock_reaches_it() -> None:
    clock = FakeClock()
    store = MemoryStore(clock=clock)
    store.publish([env(eta=clock.time() + 3600)])
    claims, next_at = await store._claim(["q"], 1, 30)
    assert claims == [] and next_at == clock.time() + 3600
    clock.advance(3600)
    claims, _ = await store._claim(["q"], 1, 30)
    assert len(claims) == 1
    assert store.stats("q").in_flight == 1


async def test_a_lease_runs_out_on_the_clock() -> None:
    clock = FakeClock()
    store = MemoryStore(clock=clock)
    store.publish([env()])
    (first,), _ = await store._claim(["q"], 1, 30)
    clock.advance(29)
    assert (await store._claim(["q"], 1, 30))[0] == []
    clock.advance(2)
    (second,), _ = await store._claim(["q"], 1, 30)
    assert second.attempt == first.attempt + 1 and second.deliveries == 2


def test_results_expire_after_their_ttl_on_the_clock() -> None:
    clock = FakeClock()
    store = MemoryStore(clock=clock)
    store.store("t", StoredResult(b"", "SUCCESS", 1, True), ttl=60)
    clock.advance(59)
    assert store.get("t") is not None
    clock.advance(2)
    assert store.get("t") is None


def test_a_task_past_its_expiry_by_the_apps_clock_is_not_run() -> None:
    clock = FakeClock()
    app = Conveyor("t", broker="memory://", clock=clock)
    ran: list[int] = []

    @app.task(expires=60)
    def job(x: int) -> None:
        ran.append(x)

    late, fresh = job.delay(1), None
    clock.advance(61)
    fresh = job.delay(2)
    run_queued(app, raise_errors=False)
    assert ran == [2]
    assert late.status is State.EXPIRED and fresh.status is State.SUCCESS


def test_event_times_come_from_the_clock() -> None:
    clock = FakeClock(2_000_000_000.0)
    app = Conveyor("t", broker="memory://", clock=clock)

    @app.task
    def noop() -> None: ...

    async def first_event() -> float:
        log = app.backend
        assert isinstance(log, MemoryStore)
        events = await log.read_events("0", 10, 0.1)
        return events[0].at

    noop.delay()
    run_queued(app)
    assert asyncio.run(first_event()) == 2_000_000_000.0
