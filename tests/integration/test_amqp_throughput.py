"""RabbitMQ's throughput paths keep their guarantees: a consumer's prefetch bound follows
``resize()`` at once, on classic queues (a channel-wide bound) and quorum queues (per-consumer:
the queues are subscribed again, and what the old subscription holds stays held on top until
settled), and what was held before the resize settles; a bulk publish, its confirms awaited
together, still names the one message RabbitMQ returned and queues the others."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from conveyor.brokers import Envelope, open_broker
from conveyor.brokers.amqp import AmqpBroker
from conveyor.errors import PublishRefused
from tests.stores import amqp_vhost

pytestmark = [pytest.mark.timeout(60)]


async def _held(broker: AmqpBroker, queue: str, at_least: int) -> int:
    """What the consumers hold of ``queue`` once it reaches ``at_least`` (or after 3 s), and
    a moment later, so that a bound that lets more through shows it."""
    for _ in range(300):
        if (await broker.astats(queue)).in_flight >= at_least:
            break
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.3)
    return (await broker.astats(queue)).in_flight


@pytest.mark.parametrize("queue_type", ["classic", "quorum"])
async def test_resize_changes_how_many_are_held(queue_type: str) -> None:
    with amqp_vhost(queue_type=queue_type) as url:
        broker = open_broker(url)
        assert isinstance(broker, AmqpBroker)
        try:
            await broker.apublish([Envelope(str(uuid.uuid4()), "pf", f"m{i}".encode())
                                   for i in range(40)])
            consumer = broker.consume(["pf"], prefetch=2, lease=30)
            first = await asyncio.wait_for(anext(consumer), 30)
            assert await _held(broker, "pf", 2) == 2
            consumer.resize(16)
            # quorum: the consumer made by the resize holds 16, the cancelled one keeps its 2
            bound = 16 if queue_type == "classic" else 18
            assert await _held(broker, "pf", bound) == bound
            consumer.resize(4)
            await first.ack()  # held from before both resizes: its ack still lands
            done = [first]
            while len(done) < 40:
                got = await asyncio.wait_for(anext(consumer), 30)
                await got.ack()
                done.append(got)
            assert len({d.envelope.body for d in done}) == 40
            await consumer.close()
            assert (await broker.astats("pf")).ready == 0
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
