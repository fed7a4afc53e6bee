"""RabbitMQ delay levels on the shared server, in this run's private vhost: quorum level queues
that dead-letter at least once, declared only for the bits a delay uses, beside an old classic
chain of the same destination that keeps delivering (the upgrade path)."""

from __future__ import annotations

import asyncio
import json
import subprocess
import time
from collections.abc import Iterator

import pytest

from conveyor.brokers import Consumer, Envelope, open_broker
from conveyor.brokers.amqp import AmqpBroker
from conveyor.brokers.amqp.options import parse
from conveyor.clock import FakeClock
from conveyor.errors import ConfigurationError
from tests.integration.conftest import wait_for
from tests.stores import amqp_vhost

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]


@pytest.fixture
def url() -> Iterator[str]:
    with amqp_vhost() as found:
        yield found


def level_queues(broker: AmqpBroker) -> dict[str, dict[str, object]]:
    """The delay level queues of ``broker``'s prefix: name -> type and arguments."""
    out = subprocess.run(
        ["rabbitmqctl", "-q", "list_queues", "-p", broker.options.vhost, "--formatter", "json",
         "name", "type", "arguments"], check=True, capture_output=True, text=True, timeout=60)
    return {q["name"]: {"type": q["type"], **{k: v for k, _, v in q["arguments"]}}
            for q in json.loads(out.stdout)
            if q["name"].startswith(broker.options.prefix) and ".delay" in q["name"]}


def envelope(ident: str, eta: float) -> Envelope:
    return Envelope(id=ident, queue="default", body=b"{}", eta=eta)


async def ids_within(consumer: Consumer, seconds: float) -> list[str]:
    """The ids handed to ``consumer`` within ``seconds`` (each acked)."""
    got: list[str] = []
    ends = time.monotonic() + seconds
    while (left := ends - time.monotonic()) > 0:
        try:
            delivery = await asyncio.wait_for(anext(consumer), left)
        except TimeoutError:
            break
        got.append(delivery.envelope.id)
        await delivery.ack()
    return got


def test_the_delay_queue_type_option() -> None:
    assert parse("amqp://h//").delay_queue_type == "quorum"
    assert parse("amqp://h//?delay_queue_type=classic").delay_queue_type == "classic"
    with pytest.raises(ConfigurationError, match="delay_queue_type must be quorum or classic"):
        parse("amqp://h//?delay_queue_type=stream")


async def test_levels_are_at_least_once_quorum_queues_of_the_bits_used(url: str) -> None:
    clock = FakeClock(1_000.0)
    broker = AmqpBroker(parse(url), clock=clock)
    try:
        await broker.apublish([envelope("q250", 1_000.25)])  # 250 ms: 0b11111010
        levels = level_queues(broker)
        prefix = broker.options.prefix
        assert sorted(levels) == sorted(f"{prefix}default.delayq.{n}" for n in (1, 3, 4, 5, 6, 7))
        for name, args in levels.items():
            level = int(name.rsplit(".", 1)[1])
            assert args == {"type": "quorum", "x-queue-type": "quorum",
                            "x-message-ttl": 2**level,
                            "x-dead-letter-strategy": "at-least-once",
                            "x-overflow": "reject-publish",
                            "x-dead-letter-exchange": f"{prefix}conveyor.delay.{level - 1}"}
        clock.advance(0.25)  # due for the consumer, which checks ETAs on arrival
        consumer = broker.consume(["default"], prefetch=4, lease=30)
        assert await ids_within(consumer, 3.0) == ["q250"]
        await consumer.close()
    finally:
        await broker.aclose()


async def test_an_old_classic_chain_delivers_beside_the_quorum_one(url: str) -> None:
    old = open_broker(url + "&delay_queue_type=classic")
    new = open_broker(url)
    assert isinstance(old, AmqpBroker) and isinstance(new, AmqpBroker)
    try:
        now = time.time()
        await old.apublish([envelope("old-soon", now + 1.0), envelope("old-late", now + 60)])
        await new.apublish([envelope("new-soon", now + 1.0), envelope("new-late", now + 60)])
        kinds = {name.split(".")[-2]: args["type"] for name, args in level_queues(new).items()}
        assert kinds == {"delay": "classic", "delayq": "quorum"}
        consumer = new.consume(["default"], prefetch=8, lease=30)
        assert sorted(await ids_within(consumer, 4.0)) == ["new-soon", "old-soon"]  # once each
        await consumer.close()
        assert new.stats("default").delayed == 2  # both chains counted
        assert sorted(e.id for e in new.scheduled("default")) == ["new-late", "old-late"]
        assert new.purge("default") == 2
        wait_for(lambda: new.stats("default").delayed == 0, timeout=10)
    finally:
        await old.aclose()
        await new.aclose()

