"""Publishing: persistent messages, publisher confirms always on, the mandatory flag always set.

A publish returns once RabbitMQ confirmed every message; a bulk publish sends them all, then
waits for their confirms together. A negative confirm or a message returned as unroutable
raises :class:`PublishRefused`; a lost connection :class:`BrokerUnavailable` (a message whose
confirm was lost may still have been queued: at least once, as with any broker), and so does a
confirm that takes longer than ``confirm_timeout``, as while a resource alarm blocks publishers.

What a message carries besides its body, in AMQP properties: ``message_id`` (the task id),
``content_type``, ``priority``, persistent delivery mode; and in headers: ``x-conveyor-attempt``
(hand-outs before this publish), ``x-conveyor-deliveries`` (those that count for the delivery
limit; either is left out when 0), ``x-conveyor-eta-ms`` (epoch milliseconds, for delayed
messages), ``x-conveyor-priority`` (the task's own priority, on a copy sent ahead of its
queue's backlog at the top priority: a redelivery on a classic queue, see :mod:`.consuming`),
and on dead letters ``x-conveyor-reason`` and ``x-conveyor-failed-at-ms``. Times
are whole milliseconds: a float in an AMQP table travels as 32 bits, two minutes coarse at
today's epoch.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import aiormq.abc
from pamqp.commands import Basic

from ...clock import Clock
from ...errors import BrokerUnavailable, ConfigurationError, PublishRefused
from ..base import Envelope
from . import delays, topology
from .connection import Client, driver_errors
from .routing import target

ATTEMPT, DELIVERIES, ETA = "x-conveyor-attempt", "x-conveyor-deliveries", "x-conveyor-eta-ms"
REASON, FAILED_AT = "x-conveyor-reason", "x-conveyor-failed-at-ms"
#: A copy sent ahead of its queue's backlog (a redelivery) carries its own priority here.
PRIORITY = "x-conveyor-priority"
PERSISTENT = 2


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One message to send: the envelope and the counts it carries."""

    envelope: Envelope
    attempt: int = 0
    deliveries: int = 0
    headers: Mapping[str, Any] = field(default_factory=dict)
    physical: str | None = None  # send to this queue as it is, bypassing exchanges
    exchange: str | None = None  # with ``physical``: this exchange (dead letters)
    ahead: bool = False  # at the top priority, ahead of what waits (its own in PRIORITY)


def properties(out: Outgoing) -> Basic.Properties:
    """The message's properties; a count of 0 is left out (a missing count reads as 0), and so
    is a headers table with nothing in it, which spares a fresh message its table encoding."""
    env = out.envelope
    headers: dict[str, Any] = dict(out.headers)
    if out.attempt:
        headers[ATTEMPT] = out.attempt
    if out.deliveries:
        headers[DELIVERIES] = out.deliveries
    if env.eta is not None:
        headers[ETA] = math.ceil(env.eta * 1000)  # AMQP tables keep floats as 32 bits
    priority = env.priority
    if out.ahead:
        headers[PRIORITY], priority = env.priority, topology.MAX_PRIORITY
    return Basic.Properties(content_type=env.content_type, delivery_mode=PERSISTENT,
                            priority=priority, message_id=env.id, headers=headers or None)


async def publish(client: Client, clock: Clock, messages: Sequence[Outgoing]) -> None:
    """Send ``messages`` and wait for all their confirms (the first failure is raised).

    Frames are queued without waiting for each to reach the socket (``wait=False``: the
    channel's lock is not held across a drain per message), then the confirms are awaited
    together."""
    if not messages:
        return
    routes = await _routes(client, clock, messages)
    channel = await client.publisher()
    assert isinstance(channel, aiormq.Channel)  # its basic_publish takes ``wait``
    timeout = client.options.confirm_timeout
    with driver_errors(client.options, "publish"):
        sends = [channel.basic_publish(out.envelope.body, exchange=exchange, routing_key=key,
                                       properties=properties(out), mandatory=True,
                                       timeout=timeout, wait=False)
                 for out, (exchange, key) in zip(messages, routes, strict=True)]
        answers = (await asyncio.gather(*sends, return_exceptions=True) if len(sends) > 1
                   else [await _answer(sends[0])])  # one: no task of its own
    for out, answer in zip(messages, answers, strict=True):
        _check(client, out, answer)


async def _answer(send: Awaitable[object]) -> object:
    """What ``send`` returned or raised, as ``gather(return_exceptions=True)`` reports it."""
    try:
        return await send
    except Exception as exc:
        return exc


async def _routes(client: Client, clock: Clock,
                  messages: Sequence[Outgoing]) -> list[tuple[str, str]]:
    """Each message's exchange and routing key: one lookup per destination of the messages
    without an ETA, one per message with one."""
    known: dict[tuple[str, str | None, str | None], tuple[str, str]] = {}
    routes = []
    for out in messages:
        key = (out.envelope.queue, out.physical, out.exchange)
        route = known.get(key) if out.envelope.eta is None else None
        if route is None:
            route = await _route(client, clock, out)
            if out.envelope.eta is None:
                known[key] = route
        routes.append(route)
    return routes


def _check(client: Client, out: Outgoing, answer: object) -> None:
    where = f"queue {out.envelope.queue!r} at {client.options.url}"
    if isinstance(answer, Basic.Ack):
        return
    if isinstance(answer, aiormq.abc.DeliveredMessage):
        raise PublishRefused(f"message {out.envelope.id} was returned unroutable by RabbitMQ:"
                             f" nothing is bound to {where} (mandatory publish)")
    if isinstance(answer, Basic.Nack | Basic.Reject):
        raise PublishRefused(f"RabbitMQ refused message {out.envelope.id} for {where}"
                             " (negative confirm)")
    if isinstance(answer, TimeoutError):
        raise BrokerUnavailable(
            f"RabbitMQ did not confirm message {out.envelope.id} for {where} within"
            f" {client.options.confirm_timeout:g} s (confirm_timeout): a memory or disk alarm"
            " blocks publishers until it clears (rabbitmqctl status), or the link is too slow;"
            " the message may still be queued later")
    if isinstance(answer, BaseException):
        with driver_errors(client.options, "publish"):
            raise answer
    raise PublishRefused(f"unexpected answer to a publish to {where}: {answer!r}")


async def _route(client: Client, clock: Clock, out: Outgoing) -> tuple[str, str]:
    """Declare what the message needs and return its exchange and routing key."""
    env = out.envelope
    prefix = client.options.prefix
    if out.exchange is not None and out.physical is not None:
        return out.exchange, out.physical
    wait = (env.eta - clock.time()) if env.eta is not None else 0.0
    if out.physical is None:
        where = target(env.queue)
        if not where.direct:
            if wait > 0:
                raise ConfigurationError(f"{env.queue!r}: delays (countdown, ETA, retry"
                                         " backoff) go to plain queues, not to exchanges")
            await topology.exchange(client, where)
            return prefix + where.exchange, where.key
        physical = prefix + env.queue
    else:
        physical = out.physical
    if wait <= 0:
        await topology.work_queue(client, physical)
        return "", physical
    ms = delays.delay_ms(wait)
    await topology.delay_levels(client, physical, ms)
    key = delays.routing_key(ms, physical, client.options.delay_queue_type)
    return topology.delay_exchange(prefix, delays.entry_level(ms)), key
