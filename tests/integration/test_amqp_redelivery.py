"""A classic queue's redelivery (its consumer's channel closed with the message unacked) is
counted by sending a copy again: that copy goes ahead of the backlog, keeping its priority."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from conveyor.brokers import Delivery, Envelope, open_broker
from conveyor.brokers.amqp import AmqpBroker
from conveyor.brokers.amqp.consuming import AmqpConsumer
from tests.stores import amqp_vhost

pytestmark = pytest.mark.timeout(60)


def envelope(priority: int = 0) -> Envelope:
    return Envelope(uuid.uuid4().hex, "q", b"{}", "application/json", priority, None)


async def take(consumer: AmqpConsumer) -> Delivery:
    return await asyncio.wait_for(anext(consumer), 10.0)


async def test_a_redelivered_message_runs_again_ahead_of_the_backlog() -> None:
    with amqp_vhost() as url:
        broker = open_broker(url)
        assert isinstance(broker, AmqpBroker)
        try:
            first = envelope(priority=3)
            broker.publish([first])
            held = broker.consume(["q"], prefetch=1, lease=30)
            assert isinstance(held, AmqpConsumer)
            got = await take(held)
            assert got.envelope.id == first.id
            backlog = [envelope(priority=3) for _ in range(5)]
            broker.publish(backlog)
            assert held._raw is not None
            await held._raw.close()  # as when its worker dies: RabbitMQ redelivers it
            other = broker.consume(["q"], prefetch=1, lease=30)
            again = await take(other)
            assert again.envelope.id == first.id
            assert (again.envelope.priority, again.attempt) == (3, 2)
            await again.ack()
            rest = []
            for _ in backlog:
                delivery = await take(other)
                rest.append(delivery.envelope.id)
                await delivery.ack()
            assert rest == [e.id for e in backlog]
            await other.close()
            await held.close()
        finally:
            broker.purge("q")
            await broker.aclose()


async def test_a_released_message_comes_back_first_with_its_priority() -> None:
    with amqp_vhost() as url:
        broker = open_broker(url)
        try:
            queued = [envelope(priority=2) for _ in range(4)]
            broker.publish(queued)
            consumer = broker.consume(["q"], prefetch=1, lease=30)
            got = await take(consumer)
            assert got.envelope.id == queued[0].id
            await got.release()
            order = []
            for _ in queued:
                delivery = await take(consumer)
                order.append((delivery.envelope.id, delivery.envelope.priority))
                await delivery.ack()
            assert order == [(e.id, 2) for e in queued]
            await consumer.close()
        finally:
            broker.purge("q")
            await broker.aclose()
