"""Quorum queues (``?queue_type=quorum``) on the shared RabbitMQ, in this run's private vhost:
the flow end to end, attempts from ``x-delivery-count``, and RabbitMQ's delivery limit
dead-lettering through ``conveyor.dead`` with its reason, never dropping the message."""

from __future__ import annotations

import asyncio
import os
import signal
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from conveyor import Conveyor, State
from conveyor.brokers import Envelope, open_broker
from conveyor.brokers.amqp import AmqpBroker
from tests.integration.amqp_env import amqp_env, bound_app
from tests.integration.conftest import Workers as BaseWorkers
from tests.integration.conftest import trace_lines, wait_for
from tests.stores import amqp_vhost

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]


@pytest.fixture
def env(tmp_path: Path) -> Iterator[dict[str, str]]:
    with amqp_env(tmp_path, queue_type="quorum") as found:
        yield found


@pytest.fixture
def app(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Iterator[Conveyor]:
    with bound_app(env, monkeypatch) as bound:
        yield bound


def test_flow_end_to_end_and_a_killed_worker_counts_an_attempt(
        app: Conveyor, env: dict[str, str]) -> None:
    from tests.integration import amqp_app

    workers = BaseWorkers(env)
    try:
        victim = workers.spawn(["-A", "tests.integration.amqp_app", "--pool", "thread",
                                "-c", "2", "--lease", "2"], env)  # its id claims run out
        sent = [amqp_app.record.delay(f"q{i}", 0.2) for i in range(20)]
        wait_for(lambda: len(trace_lines(env, "started")) >= 3, timeout=30)
        os.kill(victim.pid, signal.SIGKILL)
        victim.wait()
        workers.spawn(["-A", "tests.integration.amqp_app", "--pool", "thread", "-c", "4",
                       "--lease", "2"], env)
        assert sorted(r.get(timeout=60) for r in sent) == sorted(f"q{i}" for i in range(20))
    finally:
        workers.stop_all()
    assert sent[0].status is State.SUCCESS
    broker = app.broker
    assert isinstance(broker, AmqpBroker) and broker.options.quorum
    wait_for(lambda: broker.stats("default").ready == 0)


def held_and_dropped(url: str, queue: str) -> int:
    """Take one delivery and drop the connection without acking it (RabbitMQ returns the
    message, raising its x-delivery-count); the attempt the delivery was handed out as."""
    broker = open_broker(url)

    async def take() -> int:
        consumer = broker.consume([queue], prefetch=1, lease=30)
        got = await asyncio.wait_for(anext(consumer), 20)
        assert isinstance(broker, AmqpBroker)
        await broker.aclose()  # no ack: the connection goes with the delivery unsettled
        return got.attempt

    return asyncio.run(take())


def test_delivery_count_and_the_delivery_limit_dead_letter_with_the_reason() -> None:
    with amqp_vhost(queue_type="quorum", delivery_limit="2") as url:
        queue, task_id = f"qq{uuid.uuid4().hex[:6]}", str(uuid.uuid4())
        producer = open_broker(url)
        assert isinstance(producer, AmqpBroker)
        try:
            producer.publish([Envelope(task_id, queue, b'{"poison": true}')])
            # returned twice: handed out as attempts 1, 2 and 3 (x-delivery-count 0, 1, 2)
            assert [held_and_dropped(url, queue) for _ in range(3)] == [1, 2, 3]
            # the third return is past x-delivery-limit 2: RabbitMQ dead-letters it
            wait_for(lambda: producer.stats(queue).dead == 1, timeout=20)
            assert producer.stats(queue).ready == 0
            (dead,) = producer.dead_letters(queue)
            assert dead.envelope.id == task_id and dead.envelope.body == b'{"poison": true}'
            assert dead.reason == "rabbitmq: delivery_limit"
            assert producer.replay_dead(queue=queue) == 1  # and it can be sent again
            wait_for(lambda: producer.stats(queue).ready == 1, timeout=20)
        finally:
            producer.purge(queue)
            producer.close()
