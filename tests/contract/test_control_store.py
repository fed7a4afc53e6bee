"""Control primitives of every store that offers them: the command stream, revocations, rate
windows, concurrency-key slots, listing and waking delayed messages."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import pytest

from conveyor.brokers import (
    ConcurrencySlots,
    ControlLog,
    DelayedWake,
    Envelope,
    QueueAdmin,
    RateLimiter,
    RateWindow,
    Revocations,
    Waiter,
)
from conveyor.events import Event, Retention
from tests.contract.conftest import needs

pytestmark = pytest.mark.timeout(60)


def name(kind: str = "k") -> str:
    return f"{kind}-{uuid.uuid4().hex[:10]}"


def command(kind: str, **fields: Any) -> Event:
    return Event(kind, time.time(), fields=fields)


# -- the command stream ----------------------------------------------------------------------

async def test_control_entries_are_read_in_order_after_an_id(store: Any) -> None:
    needs(store, ControlLog, "a control stream")
    start = await store.alast_control_id()
    ids = store.append_control([command("a", n=1), command("b", n=2)], Retention())
    assert len(ids) == 2
    read = await store.aread_control(start or "0", 10, 0)
    assert [(e.kind, e.fields["n"]) for e in read] == [("a", 1), ("b", 2)]
    assert [e.id for e in read] == ids
    assert await store.aread_control(read[0].id, 10, 0) == read[1:]
    assert await store.alast_control_id() == ids[-1]


async def test_a_waiting_control_reader_wakes_on_append(store: Any) -> None:
    needs(store, ControlLog, "a control stream")
    cursor = await store.alast_control_id() or "0"
    reader = asyncio.ensure_future(store.aread_control(cursor, 10, 10))
    await asyncio.sleep(0.2)
    started = time.monotonic()
    await store.aappend_control([command("ping")], Retention())
    found = await asyncio.wait_for(reader, 5)
    assert [e.kind for e in found] == ["ping"]
    assert time.monotonic() - started < 2


async def test_the_control_stream_is_bounded(store: Any) -> None:
    needs(store, ControlLog, "a control stream")
    store.append_control([command("c", n=i) for i in range(300)], Retention(count=5))
    kept = await store.aread_control("0", 1000, 0)
    assert 5 <= len(kept) < 300  # Redis trims approximately, by whole stream nodes
    assert kept[-1].fields["n"] == 299


# -- revocations -----------------------------------------------------------------------------

async def test_revocations_are_kept_for_their_ttl(store: Any) -> None:
    needs(store, Revocations, "a revocation set")
    kept, brief = name("t"), name("t")
    store.revoke_ids([kept], 60)
    await store.arevoke_ids([brief], 0.3)
    assert {kept, brief} <= set(await store.arevoked_ids())
    await asyncio.sleep(0.5)
    found = set(await store.arevoked_ids())
    assert kept in found and brief not in found


# -- rate windows ----------------------------------------------------------------------------

async def test_a_window_admits_its_limit_then_hands_out_turns(store: Any) -> None:
    needs(store, RateLimiter, "rate limits")
    window = RateWindow(name("rate"), 3, 1.0)
    waits = [await store.acquire_rate([window], name("m")) for _ in range(7)]
    assert waits[:3] == [0.0, 0.0, 0.0]
    assert all(0.5 < w <= 1.0 for w in waits[3:6])  # the next three: when the first leave
    assert 1.5 < waits[6] <= 2.0  # the seventh: a window later


async def test_a_waiter_starts_at_its_turn_and_a_newcomer_does_not_overtake(store: Any) -> None:
    needs(store, RateLimiter, "rate limits")
    window = RateWindow(name("rate"), 1, 0.4)
    assert await store.acquire_rate([window], "first") == 0.0
    turn = await store.acquire_rate([window], "waiter")
    assert 0 < turn <= 0.4
    await asyncio.sleep(turn + 0.05)
    assert await store.acquire_rate([window], "newcomer") > 0  # the turn is the waiter's
    assert await store.acquire_rate([window], "waiter") == 0.0


async def test_an_early_member_keeps_its_turn(store: Any) -> None:
    needs(store, RateLimiter, "rate limits")
    window = RateWindow(name("rate"), 1, 5.0)
    await store.acquire_rate([window], "first")
    turn = await store.acquire_rate([window], "second")
    again = await store.acquire_rate([window], "second")
    assert 0 < again <= turn


async def test_every_window_must_have_room(store: Any) -> None:
    needs(store, RateLimiter, "rate limits")
    loose, tight = RateWindow(name("task"), 100, 1.0), RateWindow(name("queue"), 1, 1.0)
    assert await store.acquire_rate([loose, tight], "a") == 0.0
    assert await store.acquire_rate([loose, tight], "b") > 0.5
    assert await store.acquire_rate([loose], "c") == 0.0  # only the tight window is full


async def test_concurrent_members_never_exceed_the_limit_in_any_window(store: Any) -> None:
    needs(store, RateLimiter, "rate limits")
    window = RateWindow(name("rate"), 4, 0.5)
    calls: list[tuple[float, float]] = []  # (sent, answered) of each admitted call

    async def member(n: int) -> None:
        me = f"m{n}"
        while True:
            sent = time.monotonic()
            wait = await store.acquire_rate([window], me)
            if wait <= 0:
                calls.append((sent, time.monotonic()))
                return
            # Sleeping until the turn is the product's wait, not a poll of this test.
            await asyncio.sleep(wait)

    began = time.monotonic()
    await asyncio.gather(*(member(n) for n in range(14)))
    assert len(calls) == 14
    assert all(fifth_admission_gap(calls, j) > 0.5 - 0.01 for j in range(14))
    assert time.monotonic() - began < 0.5 * 4 + 1.0  # and the waiters did not dawdle


def fifth_admission_gap(calls: list[tuple[float, float]], j: int) -> float:
    """The longest time that can separate admission ``j`` from the four admitted soonest after it.

    Each admission happened between its call's send and answer, so a store that never admits five
    in one window keeps this at 0.5 s or more however late the loop wakes; one that over-admits
    puts five answers within a few ms of each other. Scheduling jitter only widens the gap.
    """
    sent, answered = calls[j]
    later = sorted(done for start, done in (c for i, c in enumerate(calls) if i != j)
                   if start >= sent)[:4]
    return max([answered, *later]) - sent if len(later) == 4 else 1.0


# -- concurrency-key slots -------------------------------------------------------------------

def waiter(holder: str) -> Waiter:
    return Waiter("q", holder)


async def acquire(store: Any, key: str, holder: str, *, limit: int = 2, lease: float = 30,
                  patience: float = 30) -> tuple[bool, list[Waiter]]:
    granted, woken = await store.acquire_slot(key, limit, holder, lease, waiter(holder),
                                              patience)
    return granted, list(woken)


async def test_slots_admit_the_limit_and_wake_the_first_waiter(store: Any) -> None:
    needs(store, ConcurrencySlots, "concurrency slots")
    key = name("slots")
    assert await acquire(store, key, "h1") == (True, [])
    assert await acquire(store, key, "h2") == (True, [])
    assert await acquire(store, key, "w1") == (False, [])
    assert await acquire(store, key, "w2") == (False, [])
    assert await acquire(store, key, "h1") == (True, [])  # asking again renews
    assert await store.release_slot(key, 2, "h1") == [waiter("w1")]
    assert await store.slot_woken(key, "w1")
    assert not await store.slot_woken(key, "w2")
    assert await acquire(store, key, "late") == (False, [])  # w1's slot is kept for it
    assert await acquire(store, key, "w1") == (True, [])
    assert await store.release_slot(key, 2, "h2") == [waiter("w2")]
    assert await store.release_slot(key, 2, "nobody") == []


async def test_a_dead_holders_slot_expires_and_a_waiter_is_woken(store: Any) -> None:
    needs(store, ConcurrencySlots, "concurrency slots")
    key = name("slots")
    assert (await acquire(store, key, "dies", limit=1, lease=0.3))[0]
    assert await acquire(store, key, "waits", limit=1) == (False, [])
    await asyncio.sleep(0.5)
    # The next operation on the key finds the slot free, keeps it for the first in line and
    # says whom to wake; the newcomer waits behind.
    assert await acquire(store, key, "newcomer", limit=1) == (False, [waiter("waits")])
    assert (await acquire(store, key, "waits", limit=1))[0]


async def test_renewed_slots_outlive_their_lease(store: Any) -> None:
    needs(store, ConcurrencySlots, "concurrency slots")
    key = name("slots")
    assert (await acquire(store, key, "h", limit=1, lease=0.4))[0]
    for _ in range(3):
        await asyncio.sleep(0.2)
        assert await store.renew_slots([(key, "h")], 0.4) == set()
    assert not (await acquire(store, key, "other", limit=1))[0]
    assert await store.renew_slots([(key, "stranger"), (name("none"), "x")], 1) == {
        "stranger", "x"}


async def test_a_waiter_loses_its_place_after_its_patience(store: Any) -> None:
    needs(store, ConcurrencySlots, "concurrency slots")
    key = name("slots")
    assert (await acquire(store, key, "h", limit=1))[0]
    assert not (await acquire(store, key, "gone", limit=1, patience=0.3))[0]
    assert not (await acquire(store, key, "stays", limit=1))[0]
    await asyncio.sleep(0.5)
    assert await store.release_slot(key, 1, "h") == [waiter("stays")]


async def test_a_waiter_that_leaves_hands_the_wake_on(store: Any) -> None:
    needs(store, ConcurrencySlots, "concurrency slots")
    key = name("slots")
    assert (await acquire(store, key, "h", limit=1))[0]
    assert not (await acquire(store, key, "w1", limit=1))[0]
    assert not (await acquire(store, key, "w2", limit=1))[0]
    assert await store.release_slot(key, 1, "h") == [waiter("w1")]
    assert await store.release_slot(key, 1, "w1") == [waiter("w2")]  # w1 was revoked, say


# -- delayed messages --------------------------------------------------------------------------

def envelope(queue: str, eta: float | None) -> Envelope:
    return Envelope(str(uuid.uuid4()), queue, b"x", eta=eta)


async def test_scheduled_lists_delayed_messages_by_eta(store: Any) -> None:
    needs(store, QueueAdmin, "queue statistics")
    queue, now = name("q"), time.time()
    later, sooner = envelope(queue, now + 600), envelope(queue, now + 300)
    store.publish([later, sooner, envelope(queue, None)])
    found = store.scheduled(queue)
    assert [e.id for e in found] == [sooner.id, later.id]
    assert found[0].eta == pytest.approx(now + 300, abs=0.01)
    assert store.scheduled(queue, limit=1)[0].id == sooner.id


async def test_waking_a_delayed_message_makes_it_due_now(store: Any) -> None:
    needs(store, DelayedWake, "waking delayed messages")
    queue = name("q")
    sleeper = envelope(queue, time.time() + 600)
    store.publish([sleeper])
    assert await store.wake_delayed(queue, [sleeper.id, "no-such-id"]) == 1
    consumer = store.consume([queue], prefetch=1, lease=30)
    got = await asyncio.wait_for(anext(consumer), 5)
    assert got.envelope.id == sleeper.id
    assert await store.wake_delayed(queue, [sleeper.id]) == 0  # held: left alone
    await got.ack()
    await consumer.close()
