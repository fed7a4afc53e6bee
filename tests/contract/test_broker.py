"""Broker contract: the same cases for every store (see tests/contract/conftest.py)."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import Coroutine
from typing import Any, TypeVar

import pytest

from conveyor.brokers import (
    Consumer,
    DeadLetterAdmin,
    Delivery,
    Envelope,
    PullBroker,
    QueueAdmin,
    ResultBackend,
)
from conveyor.errors import LeaseLost
from tests.contract.conftest import needs

T = TypeVar("T")

pytestmark = pytest.mark.timeout(60)


def env(queue: str = "q", body: bytes = b"x", **kw: Any) -> Envelope:
    return Envelope(id=str(uuid.uuid4()), queue=queue, body=body, **kw)


async def take(consumer: Consumer, timeout: float = 5.0) -> Delivery:
    return await asyncio.wait_for(anext(consumer), timeout)


async def nothing_within(consumer: Consumer, seconds: float) -> bool:
    try:
        await asyncio.wait_for(anext(consumer), seconds)
    except TimeoutError:
        return True
    return False


async def drain(store: Any, queue: str, n: int, **kw: Any) -> list[Delivery]:
    consumer = store.consume([queue], prefetch=max(n, 1), lease=kw.get("lease", 30.0))
    got = [await take(consumer) for _ in range(n)]
    await consumer.close()
    return got


async def test_published_message_consumed_once_intact(store: Any) -> None:
    sent = env(body=b"\x00binary\xff", content_type="application/msgpack", priority=3)
    store.publish([sent])
    consumer = store.consume(["q"], prefetch=4, lease=30)
    got = await take(consumer)
    assert got.envelope.id == sent.id
    assert got.envelope.body == sent.body
    assert got.envelope.content_type == "application/msgpack"
    assert got.envelope.priority == 3
    assert got.attempt == 1
    await got.ack()
    assert await nothing_within(consumer, 0.3)
    await consumer.close()


async def test_fifo_within_priority_and_nine_first(store: Any) -> None:
    sent = [env(body=f"{p}-{i}".encode(), priority=p) for i in range(3) for p in (0, 9, 5)]
    store.publish(sent)
    got = await drain(store, "q", len(sent))
    bodies = [d.envelope.body.decode() for d in got]
    assert bodies == ["9-0", "9-1", "9-2", "5-0", "5-1", "5-2", "0-0", "0-1", "0-2"]


async def test_queue_order_breaks_priority_ties(store: Any) -> None:
    store.publish([env("low", b"low"), env("high", b"high")])
    consumer = store.consume(["high", "low"], prefetch=2, lease=30)
    first, second = await take(consumer), await take(consumer)
    assert (first.envelope.body, second.envelope.body) == (b"high", b"low")
    await consumer.close()


async def test_eta_not_before_and_soon_after(store: Any) -> None:
    due = time.time() + 0.6
    store.publish([env(body=b"later", eta=due)])
    consumer = store.consume(["q"], prefetch=1, lease=30)
    got = await take(consumer, timeout=5)
    assert time.time() >= due
    assert time.time() - due < 1.5
    assert got.envelope.body == b"later"
    await consumer.close()


async def test_far_future_eta_is_never_delivered_early(store: Any) -> None:
    needs(store, QueueAdmin, "queue statistics")
    store.publish([env(eta=time.time() + 3600)])
    consumer = store.consume(["q"], prefetch=1, lease=0.5)
    assert await nothing_within(consumer, 1.5)
    await consumer.close()
    assert store.stats("q").delayed == 1


async def test_bulk_publish_all_arrive(store: Any) -> None:
    needs(store, QueueAdmin, "queue statistics")
    sent = [env(body=str(i).encode()) for i in range(2000)]
    store.publish(sent)
    assert store.stats("q").ready == 2000
    got = await drain(store, "q", 2000)
    assert sorted(d.envelope.id for d in got) == sorted(e.id for e in sent)


async def test_async_publish(store: Any) -> None:
    await store.apublish([env(body=b"async")])
    got = await drain(store, "q", 1)
    assert got[0].envelope.body == b"async"


async def test_queues_are_isolated(store: Any) -> None:
    needs(store, QueueAdmin, "queue statistics")
    store.publish([env("a", b"for-a"), env("b", b"for-b")])
    consumer = store.consume(["a"], prefetch=5, lease=30)
    got = await take(consumer)
    assert got.envelope.body == b"for-a"
    assert await nothing_within(consumer, 0.3)
    await consumer.close()
    assert store.stats("b").ready == 1


async def test_prefetch_bound_holds(store: Any) -> None:
    store.publish([env() for _ in range(5)])
    consumer = store.consume(["q"], prefetch=2, lease=30)
    first, _second = await take(consumer), await take(consumer)
    assert await nothing_within(consumer, 0.3)
    await first.ack()
    await take(consumer)
    assert await nothing_within(consumer, 0.3)
    await consumer.close()


async def test_two_consumers_never_share_a_message(store: Any) -> None:
    store.publish([env(body=str(i).encode()) for i in range(200)])
    seen: list[str] = []

    async def run() -> None:
        consumer = store.consume(["q"], prefetch=8, lease=30)
        while not await nothing_within_collect(consumer, seen):
            pass
        await consumer.close()

    await asyncio.gather(run(), run())
    assert len(seen) == 200
    assert len(set(seen)) == 200


async def nothing_within_collect(consumer: Consumer, seen: list[str]) -> bool:
    try:
        delivery = await asyncio.wait_for(anext(consumer), 0.5)
    except TimeoutError:
        return True
    seen.append(delivery.envelope.id)
    await delivery.ack()
    return False


async def test_ack_is_final_and_second_ack_harmless(store: Any) -> None:
    needs(store, QueueAdmin, "queue statistics")
    store.publish([env()])
    (got,) = await drain(store, "q", 1)
    await got.ack()
    await got.ack()
    stats = store.stats("q")
    assert (stats.ready, stats.in_flight, stats.delayed) == (0, 0, 0)


async def test_retry_comes_back_later_with_new_body_and_higher_attempt(store: Any) -> None:
    store.publish([env(body=b"v1")])
    consumer = store.consume(["q"], prefetch=1, lease=30)
    first = await take(consumer)
    started = time.time()
    await first.retry(0.5, b"v2")
    second = await take(consumer)
    assert time.time() - started >= 0.45
    assert second.envelope.id == first.envelope.id
    assert second.envelope.body == b"v2"
    assert second.attempt > first.attempt
    await second.ack()
    await consumer.close()


async def test_dead_letter_keeps_body_and_reason_replay_once_purge(store: Any) -> None:
    needs(store, QueueAdmin, "queue statistics")
    needs(store, DeadLetterAdmin, "dead-letter browsing")
    sent = env(body=b"poison")
    store.publish([sent])
    (got,) = await drain(store, "q", 1)
    await got.dead_letter("undecodable body")
    (dead,) = store.dead_letters("q")
    assert (dead.envelope.id, dead.envelope.body) == (sent.id, b"poison")
    assert dead.reason == "undecodable body"
    assert store.stats("q").dead == 1
    assert store.replay_dead([sent.id]) == 1
    assert store.replay_dead([sent.id]) == 0
    (again,) = await drain(store, "q", 1)
    assert again.envelope.body == b"poison"
    await again.dead_letter("still bad")
    assert store.purge_dead("q") == 1
    assert store.dead_letters("q") == []


async def test_release_returns_the_message_at_once(store: Any) -> None:
    store.publish([env()])
    consumer = store.consume(["q"], prefetch=1, lease=60)
    got = await take(consumer)
    await got.release()
    again = await take(consumer, timeout=1.0)
    assert again.envelope.id == got.envelope.id
    await consumer.close()


async def test_an_abandoned_delivery_returns_after_its_lease(store: Any) -> None:
    """A delivery whose settle failed is abandoned: it comes back after its lease, to the same
    open consumer (the prefetch slot it held is free again), counted as another attempt."""
    store.publish([env()])
    consumer = store.consume(["q"], prefetch=1, lease=0.6)
    got = await take(consumer)
    got.abandon()
    assert await nothing_within(consumer, 0.2)
    again = await take(consumer, timeout=5.0)
    assert again.envelope.id == got.envelope.id
    assert again.attempt == got.attempt + 1
    await again.ack()
    await consumer.close()


async def test_frozen_consumer_loses_its_delivery_within_the_lease(store: Any) -> None:
    needs(store, PullBroker, "leases")
    store.publish([env()])
    with Frozen() as zombie:
        zombie_consumer, stale = zombie.hold_then_freeze(store, 0.5, 2.0)
        consumer = store.consume(["q"], prefetch=1, lease=30)
        got = await take(consumer, timeout=3.0)
        assert got.envelope.id == stale.envelope.id
        assert got.attempt == stale.attempt + 1
        with pytest.raises(LeaseLost):
            zombie.run(stale.ack())  # the zombie is fenced out
        await got.ack()
        await consumer.close()
        zombie.run(zombie_consumer.close())


async def test_live_consumer_keeps_its_delivery_past_the_lease(store: Any) -> None:
    store.publish([env()])
    holder = store.consume(["q"], prefetch=1, lease=0.6)
    got = await take(holder)
    await asyncio.sleep(1.8)
    other = store.consume(["q"], prefetch=1, lease=30)
    assert await nothing_within(other, 0.3)
    assert not got.lost
    await got.ack()
    await other.close()
    await holder.close()


async def test_zombie_renewal_reports_lost_and_cannot_retry(store: Any) -> None:
    needs(store, PullBroker, "leases")
    store.publish([env()])
    with Frozen() as zombie:
        zombie_consumer, stale = zombie.hold_then_freeze(store, 0.3, 1.0)
        consumer = store.consume(["q"], prefetch=1, lease=30)
        taken = await take(consumer, timeout=3.0)
        zombie.run(asyncio.sleep(0.5))  # thawed: its next renewal finds the lease gone
        assert stale.lost
        with pytest.raises(LeaseLost):
            zombie.run(stale.retry(0, None))
        await taken.ack()
        await consumer.close()
        zombie.run(zombie_consumer.close())


async def test_a_keeper_renews_the_leases_of_a_frozen_consumer(store: Any) -> None:
    """While a task blocks the consumer's loop, its keeper (called from another thread, here
    the test's) keeps the held lease: another consumer gets nothing past the lease."""
    needs(store, PullBroker, "leases")
    store.publish([env()])
    with Frozen() as blocked:
        holder, held = blocked.hold_then_freeze(store, 0.6, 2.2)
        keep = holder.keeper()
        assert keep is not None
        other = store.consume(["q"], prefetch=1, lease=30)
        for _ in range(10):  # 2 s: past three leases
            await asyncio.to_thread(keep)
            assert await nothing_within(other, 0.2)
        await asyncio.sleep(0.4)  # the loop thaws
        assert not held.lost
        blocked.run(held.ack())
        await other.close()
        blocked.run(holder.close())


async def _consume(store: Any, lease: float) -> Consumer:
    return store.consume(["q"], prefetch=1, lease=lease)


async def _cancel_others() -> None:
    mine = asyncio.current_task()
    others = [t for t in asyncio.all_tasks() if t is not mine]
    for task in others:
        task.cancel()
    await asyncio.gather(*others, return_exceptions=True)


class Frozen:
    """A consumer's own event loop in a thread, which the test can freeze: a blocked loop
    stops renewing leases exactly as a process stopped by SIGSTOP does."""

    def __enter__(self) -> Frozen:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        return self

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(15)

    def freeze(self, seconds: float) -> None:
        self.loop.call_soon_threadsafe(time.sleep, seconds)

    def hold_then_freeze(self, store: Any, lease: float,
                         seconds: float) -> tuple[Consumer, Delivery]:
        """Take the next message with a ``lease``-second consumer on this loop, then freeze
        the loop: its renewals stop, as in a process stopped by SIGSTOP."""
        consumer = self.run(_consume(store, lease))
        delivery = self.run(take(consumer))
        self.freeze(seconds)
        return consumer, delivery

    def __exit__(self, *_: object) -> None:
        self.run(_cancel_others())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(15)
        self.loop.close()


async def test_close_unblocks_a_waiting_consumer_promptly(store: Any) -> None:
    consumer = store.consume(["empty"], prefetch=1, lease=30)
    waiting = asyncio.ensure_future(anext(consumer))
    await asyncio.sleep(0.2)
    started = time.monotonic()
    await consumer.close()
    with pytest.raises(StopAsyncIteration):
        await asyncio.wait_for(waiting, 2.0)
    assert time.monotonic() - started < 1.0


async def test_close_gives_back_unstarted_deliveries(store: Any) -> None:
    needs(store, QueueAdmin, "queue statistics")
    store.publish([env() for _ in range(3)])
    consumer = store.consume(["q"], prefetch=3, lease=60)
    await take(consumer)
    await consumer.close()
    assert store.stats("q").ready == 2


async def test_purge_and_stats(store: Any) -> None:
    needs(store, QueueAdmin, "queue statistics")
    store.publish([env() for _ in range(4)] + [env(eta=time.time() + 600)])
    (held,) = await drain(store, "q", 1)
    stats = store.stats("q")
    assert (stats.ready, stats.in_flight, stats.delayed) == (3, 1, 1)
    assert "q" in store.queues()
    assert store.purge("q") == 4
    assert store.stats("q").ready == 0
    await held.ack()


async def test_settles_can_carry_their_result(store: Any) -> None:
    needs(store, DeadLetterAdmin, "dead-letter browsing")
    needs(store, ResultBackend, "results")
    from conveyor.brokers import ResultWrite, StoredResult

    ids = [env(body=str(i).encode()) for i in range(3)]
    pending = StoredResult(b"", "PENDING", 0, False)
    store.publish_tracked(ids, [(e.id, pending) for e in ids], 60)
    assert [r.state for r in store.get_many([e.id for e in ids])] == ["PENDING"] * 3
    consumer = store.consume(["q"], prefetch=3, lease=30)
    acked, retried, dead = [await take(consumer) for _ in range(3)]

    def write(d: Delivery, state: str, final: bool) -> ResultWrite:
        return ResultWrite(d.envelope.id, StoredResult(state.encode(), state, d.attempt, final), 60)

    await acked.ack(result=write(acked, "SUCCESS", True))
    await retried.retry(0, None, result=write(retried, "RETRY", False))
    await dead.dead_letter("gave up", result=write(dead, "FAILURE", True))
    states = [r.state for r in store.get_many([acked.envelope.id, retried.envelope.id,
                                               dead.envelope.id])]
    assert states == ["SUCCESS", "RETRY", "FAILURE"]
    again = await take(consumer)
    assert again.envelope.id == retried.envelope.id
    await again.ack()
    assert [d.envelope.id for d in store.dead_letters("q")] == [dead.envelope.id]
    await consumer.close()


async def test_async_publish_tracked(store: Any) -> None:
    needs(store, QueueAdmin, "queue statistics")
    needs(store, ResultBackend, "results")
    from conveyor.brokers import StoredResult

    sent = env()
    await store.apublish_tracked([sent], [(sent.id, StoredResult(b"", "PENDING", 0, False))], 60)
    assert store.get(sent.id).state == "PENDING"
    assert store.stats("q").ready == 1


async def test_deliveries_count_handouts_since_publish_retry_or_replay(store: Any) -> None:
    store.publish([env()])
    consumer = store.consume(["q"], prefetch=1, lease=30)
    first = await take(consumer)
    assert first.deliveries == 1
    await first.release()  # a graceful give-back does not count
    again = await take(consumer)
    assert again.deliveries == 1
    await again.retry(0, None)  # a retry starts the count afresh
    retried = await take(consumer)
    assert retried.deliveries == 1
    await retried.dead_letter("poison")
    await consumer.close()
    if isinstance(store, DeadLetterAdmin):
        store.replay_dead([retried.envelope.id])
        (replayed,) = await drain(store, "q", 1)
        assert replayed.deliveries == 1
        await replayed.ack()


async def test_a_deferral_keeps_the_earlier_handouts_counted(store: Any) -> None:
    """A deferred message (it waits for a rate limit, a key, an id claim; it did not run)
    keeps the hand-outs before it counted, so a crash before the deferral still counts toward
    the delivery limit; a retry starts afresh."""
    store.publish([env()])
    consumer = store.consume(["q"], prefetch=1, lease=0.6)
    got = await take(consumer)
    got.abandon()  # as a crashed holder's lease runs out
    crashed = await take(consumer, timeout=5.0)
    assert crashed.deliveries == 2
    await crashed.retry(0, None, keep_count=True)
    deferred = await take(consumer)
    assert deferred.deliveries == 2  # the crash, and this hand-out
    await deferred.retry(0, None)
    retried = await take(consumer)
    assert retried.deliveries == 1
    await retried.ack()
    await consumer.close()


async def test_deliveries_count_a_consumer_that_died(store: Any) -> None:
    needs(store, PullBroker, "leases")
    store.publish([env()])
    with Frozen() as zombie:
        zombie_consumer, stale = zombie.hold_then_freeze(store, 0.3, 1.0)
        consumer = store.consume(["q"], prefetch=1, lease=30)
        taken = await take(consumer, timeout=3.0)
        assert (stale.deliveries, taken.deliveries) == (1, 2)
        await taken.ack()
        await consumer.close()
        zombie.run(zombie_consumer.close())


async def test_record_started_marks_tracked_tasks_in_the_claim(store: Any) -> None:
    from conveyor.brokers import StoredResult
    from conveyor.brokers.base import UNTRACKED_START

    needs(store, ResultBackend, "results")
    tracked, untracked, done, bare = env(), env(), env(), env()
    store.publish_tracked([tracked, untracked, done], [
        (tracked.id, StoredResult(b"", "PENDING", 0, False)),
        (untracked.id, StoredResult(UNTRACKED_START, "PENDING", 0, False)),
        (done.id, StoredResult(b"x", "REVOKED", 2**40, True))], 60)
    store.publish([bare])
    consumer = store.consume(["q"], prefetch=4, lease=30, record_started=True)
    got = {d.envelope.id: d for d in [await take(consumer) for _ in range(4)]}
    if all(d.record is None for d in got.values()):
        pytest.skip(f"{type(store).__name__} leaves STARTED to the worker")
    assert got[tracked.id].record == "STARTED"
    record = store.get(tracked.id)
    assert (record.state, record.attempt, record.final) == ("STARTED", got[tracked.id].attempt,
                                                            False)
    assert got[untracked.id].record == "PENDING" and store.get(untracked.id).state == "PENDING"
    assert got[done.id].record == "REVOKED"
    assert got[bare.id].record == "" and store.get(bare.id) is None
    for delivery in got.values():
        await delivery.ack()
    await consumer.close()


async def test_settles_given_while_the_consumer_waits_ride_with_its_next_claim(
    store: Any
) -> None:
    sent = [env(body=str(i).encode()) for i in range(30)]
    store.publish(sent)
    consumer = store.consume(["q"], prefetch=3, lease=30)
    seen: list[str] = []

    async def work(delivery: Delivery) -> None:
        seen.append(delivery.envelope.id)
        await delivery.ack()

    running: list[asyncio.Task[None]] = []
    for _ in range(30):
        delivery = await take(consumer)
        running.append(asyncio.ensure_future(work(delivery)))
    await asyncio.gather(*running)
    assert sorted(seen) == sorted(e.id for e in sent)
    assert await nothing_within(consumer, 0.3)
    await consumer.close()
    if isinstance(store, QueueAdmin):
        stats = store.stats("q")
        assert (stats.ready, stats.in_flight) == (0, 0)


async def test_an_id_published_again_while_stored_is_one_job(store: Any) -> None:
    """The same id published twice (a retried publish, two producers at once), while queued or
    held, is one message, and its holder keeps it."""
    needs(store, PullBroker, "leases")
    sent = env()
    store.publish([sent])
    store.publish([sent])
    consumer = store.consume(["q"], prefetch=2, lease=30)
    held = await take(consumer)
    store.publish([Envelope(id=sent.id, queue="q", body=b"later")])
    assert await nothing_within(consumer, 0.3)
    await held.ack()  # not LeaseLost: the second publish did not take it away
    assert held.envelope.body == b"x"
    await consumer.close()
