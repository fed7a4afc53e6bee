"""The names and declarations of every queue and exchange, all durable and idempotent.

For a queue ``q`` (names get the URL's ``prefix`` first):

- ``q``: the work queue; classic with ``x-max-priority: 9``, or quorum (``queue_type=quorum``,
  no priorities on RabbitMQ before 4.0) with RabbitMQ's ``x-delivery-limit`` when one is set;
  either way its dead-letter exchange is ``conveyor.dead``, so a message RabbitMQ gives up
  (delivery limit, rejection) is kept, never dropped;
- ``q.dead``: its dead-letter queue, bound to the direct exchange ``conveyor.dead`` with key
  ``q``; the reason travels in the ``x-conveyor-reason`` header (or RabbitMQ's ``x-death``);
- ``q.delayq.0`` .. ``q.delayq.31``: its delay levels (see :mod:`.delays`), with the shared
  topic exchanges ``conveyor.delay.0`` .. ``conveyor.delay.31`` and ``conveyor.delay.deliver``.
  A level queue is declared with the first message that waits in it. They are quorum queues with
  ``x-dead-letter-strategy: at-least-once`` and ``x-overflow: reject-publish`` (without which
  RabbitMQ falls back to at most once): an expired message stays in its level until the
  queues it is routed to (the next level down, or the work queue) confirmed it, so a node
  killed while messages move between levels loses none; it may move one twice, and the id
  claims run such a copy once. With ``delay_queue_type=classic`` they are the classic queues
  ``q.delay.0`` .. ``q.delay.31`` of earlier versions (at most once, unconfirmed). Both chains
  route through the same durable exchanges, so an old classic chain drains into the work queue
  while new messages wait in the quorum one.

Declaring what already exists with the same arguments is a no-op in RabbitMQ; with different
ones (a classic queue redeclared as quorum) RabbitMQ refuses, reported as ConfigurationError.
A :class:`Client` remembers what it declared, so each declaration costs one round trip per
connection.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from . import delays
from .connection import Client, driver_errors
from .routing import Target

MAX_PRIORITY = 9
DEAD_EXCHANGE = "conveyor.dead"
DELIVER_EXCHANGE = "conveyor.delay.deliver"


def delay_exchange(prefix: str, level: int) -> str:
    return f"{prefix}conveyor.delay.{level}" if level >= 0 else f"{prefix}{DELIVER_EXCHANGE}"


def level_queue(physical: str, level: int, kind: str) -> str:
    """Level ``level`` of ``physical`` in the chain of ``kind`` (``quorum`` or ``classic``)."""
    return f"{physical}.delay.{level}" if kind == "classic" else f"{physical}.delayq.{level}"


def level_arguments(prefix: str, level: int, kind: str) -> dict[str, Any]:
    """A level queue's arguments: its TTL and where it dead-letters to (the level below)."""
    args: dict[str, Any] = {"x-queue-type": kind, "x-message-ttl": 2**level,
                            "x-dead-letter-exchange": delay_exchange(prefix, level - 1)}
    if kind == "quorum":
        args |= {"x-dead-letter-strategy": "at-least-once", "x-overflow": "reject-publish"}
    return args


def dead_queue(physical: str) -> str:
    return f"{physical}.dead"


def work_arguments(client: Client, physical: str) -> dict[str, Any]:
    options = client.options
    args: dict[str, Any] = {"x-dead-letter-exchange": f"{options.prefix}{DEAD_EXCHANGE}",
                            "x-dead-letter-routing-key": physical}
    if options.quorum:
        args["x-queue-type"] = "quorum"
        if options.delivery_limit:
            args["x-delivery-limit"] = options.delivery_limit
    else:
        args["x-max-priority"] = MAX_PRIORITY
    return args


async def once(client: Client, key: Any, declare: Callable[[], Awaitable[None]]) -> None:
    """Run ``declare`` once per connection for ``key``; concurrent callers share the run, and a
    failed run is tried again by the next caller."""
    future = client.declared.get(key)
    if future is None or (future.done() and future.exception() is not None):
        future = asyncio.ensure_future(declare())
        client.declared[key] = future
    await asyncio.shield(future)


async def work_queue(client: Client, physical: str) -> None:
    """Declare the work queue ``physical`` and its dead-letter queue."""
    async def declare() -> None:
        channel = await client.publisher()
        prefix = client.options.prefix
        with driver_errors(client.options, f"declare queue {physical!r}"):
            await channel.exchange_declare(f"{prefix}{DEAD_EXCHANGE}", exchange_type="direct",
                                           durable=True)
            await channel.queue_declare(dead_queue(physical), durable=True,
                                        arguments={"x-queue-type": "classic"})
            await channel.queue_bind(dead_queue(physical), f"{prefix}{DEAD_EXCHANGE}",
                                     routing_key=physical)
            await channel.queue_declare(physical, durable=True,
                                        arguments=work_arguments(client, physical))
    await once(client, ("queue", physical), declare)


async def exchange(client: Client, target: Target) -> None:
    """Declare the fanout or topic exchange of ``target``."""
    name = client.options.prefix + target.exchange

    async def declare() -> None:
        channel = await client.publisher()
        with driver_errors(client.options, f"declare exchange {name!r}"):
            await channel.exchange_declare(name, exchange_type=target.kind, durable=True)
    await once(client, ("exchange", name, target.kind), declare)


async def delay_exchanges(client: Client) -> None:
    """The shared level exchanges, each passing keys whose bit is 0 to the level below."""
    prefix = client.options.prefix

    async def declare() -> None:
        channel = await client.publisher()
        with driver_errors(client.options, "declare the delay exchanges"):
            for level in range(-1, delays.LEVELS):
                await channel.exchange_declare(delay_exchange(prefix, level),
                                               exchange_type="topic", durable=True)
            for level in range(delays.LEVELS):
                await channel.exchange_bind(
                    destination=delay_exchange(prefix, level - 1),
                    source=delay_exchange(prefix, level),
                    routing_key=delays.level_binding(level, "0"))
    await once(client, ("delay-exchanges",), declare)


async def delay_levels(client: Client, physical: str, ms: int) -> None:
    """Declare what a delay of ``ms`` to the work queue ``physical`` waits in: the exchanges,
    the work queue with its delivery binding, and the level queues of the bits of ``ms``."""
    await delay_exchanges(client)
    await work_queue(client, physical)
    kind, prefix = client.options.delay_queue_type, client.options.prefix

    async def deliver() -> None:
        channel = await client.publisher()
        with driver_errors(client.options, f"bind {physical!r} to the delay exchanges"):
            await channel.queue_bind(physical, delay_exchange(prefix, -1),
                                     routing_key=delays.deliver_binding(physical, kind))
    await once(client, ("delay-deliver", physical, kind), deliver)
    for level in delays.set_levels(ms):
        await _level(client, physical, level)


async def _level(client: Client, physical: str, level: int) -> None:
    kind, prefix = client.options.delay_queue_type, client.options.prefix
    name = level_queue(physical, level, kind)

    async def declare() -> None:
        channel = await client.publisher()
        with driver_errors(client.options, f"declare the delay level {name!r}"):
            await channel.queue_declare(name, durable=True,
                                        arguments=level_arguments(prefix, level, kind))
            await channel.queue_bind(name, delay_exchange(prefix, level), routing_key=(
                delays.level_binding(level, "1", delays.token(physical, kind))))
    await once(client, ("delay-level", name), declare)
