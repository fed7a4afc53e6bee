"""The names and declarations of every queue and exchange, all durable and idempotent.

For a queue ``q`` (names get the URL's ``prefix`` first):

- ``q``: the work queue; classic with ``x-max-priority: 9``, or quorum (``queue_type=quorum``,
  no priorities on RabbitMQ before 4.0) with RabbitMQ's ``x-delivery-limit`` when one is set;
  either way its dead-letter exchange is ``conveyor.dead``, so a message RabbitMQ gives up
  (delivery limit, rejection) is kept, never dropped;
- ``q.dead``: its dead-letter queue, bound to the direct exchange ``conveyor.dead`` with key
  ``q``; the reason travels in the ``x-conveyor-reason`` header (or RabbitMQ's ``x-death``);
- ``q.delay.0`` .. ``q.delay.31``: its delay levels (see :mod:`.delays`), with the shared topic
  exchanges ``conveyor.delay.0`` .. ``conveyor.delay.31`` and ``conveyor.delay.deliver``.

Declaring what already exists with the same arguments is a no-op in RabbitMQ; with different
ones (a classic queue redeclared as quorum) RabbitMQ refuses, reported as ConfigurationError.
A :class:`Client` remembers what it declared, so each declaration costs one round trip per
connection.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import aiormq.abc

from . import delays
from .connection import Client, driver_errors
from .routing import Target

MAX_PRIORITY = 9
DEAD_EXCHANGE = "conveyor.dead"
DELIVER_EXCHANGE = "conveyor.delay.deliver"


def delay_exchange(prefix: str, level: int) -> str:
    return f"{prefix}conveyor.delay.{level}" if level >= 0 else f"{prefix}{DELIVER_EXCHANGE}"


def level_queue(physical: str, level: int) -> str:
    return f"{physical}.delay.{level}"


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


async def delay_levels(client: Client, physical: str) -> None:
    """Declare the delay levels of the work queue ``physical``."""
    await delay_exchanges(client)
    await work_queue(client, physical)

    async def declare() -> None:
        channel = await client.publisher()
        with driver_errors(client.options, f"declare the delay levels of {physical!r}"):
            await _declare_levels(channel, client.options.prefix, physical)
    await once(client, ("delays", physical), declare)


async def _declare_levels(channel: aiormq.abc.AbstractChannel, prefix: str,
                          physical: str) -> None:
    word = delays.token(physical)
    for level in range(delays.LEVELS):
        name = level_queue(physical, level)
        await channel.queue_declare(name, durable=True, arguments={
            "x-queue-type": "classic", "x-message-ttl": 2**level,
            "x-dead-letter-exchange": delay_exchange(prefix, level - 1)})
        await channel.queue_bind(name, delay_exchange(prefix, level),
                                 routing_key=delays.level_binding(level, "1", word))
    await channel.queue_bind(physical, delay_exchange(prefix, -1),
                             routing_key=delays.deliver_binding(physical))
