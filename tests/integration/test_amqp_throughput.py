"""RabbitMQ's throughput paths keep their guarantees: a consumer's prefetch bound follows
``resize()`` at once, one bound shared by several classic queues (RabbitMQ changes it in place)
or per consumer (one queue, quorum queues: each queue is subscribed again, and what the old
subscription holds stays held on top until settled), and what was held before the resize
settles; a bulk publish, its confirms awaited together, still names the one message RabbitMQ
returned and queues the others."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from conveyor.brokers import Envelope, open_broker
from conveyor.brokers.amqp import AmqpBroker
from conveyor.errors import PublishRefused
from tests.stores import amqp_vhost

pytestmark = [pytest.mark.timeout(60)]


async def _held(broker: AmqpBroker, queues: list[str], at_least: int) -> int:
    """What the consumers hold of ``queues`` once it reaches ``at_least`` (or after 3 s), and
    a moment later, so that a bound that lets more through shows it."""
    async def held() -> int:
        return sum([(await broker.astats(q)).in_flight for q in queues])
    for _ in range(300):
        if await held() >= at_least:
            break
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.3)
    return await held()


@pytest.mark.parametrize(("queue_type", "queues", "grown"), [
    ("classic", ["pf"], 18), ("classic", ["pf", "pf2"], 16), ("quorum", ["pf"], 18)])
async def test_resize_changes_how_many_are_held(queue_type: str, queues: list[str],
                                                grown: int) -> None:
    """From 2 to 16: a shared bound holds 16 in all, a per-consumer one 16 more than the 2
    the cancelled subscription keeps until they are settled."""
    with amqp_vhost(queue_type=queue_type) as url:
        broker = open_broker(url)
        assert isinstance(broker, AmqpBroker)
        try:
            await broker.apublish([Envelope(str(uuid.uuid4()), q, f"{q}{i}".encode())
                                   for q in queues for i in range(40 // len(queues))])
            consumer = broker.consume(queues, prefetch=2, lease=30)
            first = await asyncio.wait_for(anext(consumer), 30)
            assert await _held(broker, queues, 2) == 2
            consumer.resize(16)
            assert await _held(broker, queues, grown) == grown
            consumer.resize(4)
            await first.ack()  # held from before both resizes: its ack still lands
            done = [first]
            while len(done) < 40:
                got = await asyncio.wait_for(anext(consumer), 30)
                await got.ack()
                done.append(got)
            assert len({d.envelope.body for d in done}) == 40
            await consumer.close()
            assert sum([(await broker.astats(q)).ready for q in queues]) == 0
        finally:
            await broker.aclose()


async def test_a_bulk_publish_with_one_unroutable_message_raises_and_queues_the_rest() -> None:
    with amqp_vhost() as url:
        broker = open_broker(url)
        assert isinstance(broker, AmqpBroker)
        try:
            batch = [Envelope(str(uuid.uuid4()), "bulk", f"m{i}".encode()) for i in range(300)]
            batch.insert(150, Envelope("lost-one", "topic/nobody-bound/x", b"?"))
            with pytest.raises(PublishRefused, match="lost-one"):
                await broker.apublish(batch)
            for _ in range(100):
                if (await broker.astats("bulk")).ready == 300:
                    break
                await asyncio.sleep(0.05)
            assert (await broker.astats("bulk")).ready == 300
        finally:
            await broker.aclose()
