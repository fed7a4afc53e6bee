"""Queue statistics, purge and the dead-letter queue, with plain AMQP (no management plugin).

Counts come from passive declares: ``ready`` is the work queue's message count, ``delayed`` the
sum over its delay levels (both chains, see :mod:`.delays`), ``dead`` its dead-letter queue's.
RabbitMQ reports unacknowledged messages only through the management plugin, so ``in_flight``
counts what this process holds. Dead letters are browsed with ``basic.get`` on a channel of
their own, then given back in their order by closing it; a replay publishes the copy
(confirmed) before acking the dead letter.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import Any

import aiormq.abc
import aiormq.exceptions
from pamqp.commands import Basic

from ...clock import Clock
from ..base import DeadLetter, Envelope
from . import delays, publishing, topology
from .connection import Client, driver_errors
from .options import DELAY_QUEUE_TYPES
from .publishing import ATTEMPT, ETA, FAILED_AT, REASON, Outgoing


async def count(client: Client, queue: str) -> int:
    """Messages ready in ``queue``; 0 when it does not exist."""
    return (await declared(client, queue))[0]


async def declared(client: Client, queue: str) -> tuple[int, int]:
    """Ready messages and consumers of ``queue`` by a passive declare; (0, 0) when it does
    not exist (the probe's channel then closes, so each probe takes a channel of its own)."""
    channel = await client.channel()
    try:
        raw = await channel.get_underlay_channel()
        with driver_errors(client.options, f"count {queue!r}"):
            try:
                ok = await raw.queue_declare(queue, passive=True)
            except aiormq.exceptions.ChannelNotFoundEntity:
                return 0, 0
        return int(ok.message_count or 0), int(ok.consumer_count or 0)
    finally:
        with contextlib.suppress(Exception):
            await channel.close()


async def delayed(client: Client, physical: str) -> int:
    """Messages waiting in the delay levels of ``physical``, of both chains."""
    return sum((await levels(client, physical)).values())


def level_names(physical: str) -> list[str]:
    """Every level queue ``physical`` may have: the quorum chain's, then the classic one's."""
    return [topology.level_queue(physical, level, kind)
            for kind in DELAY_QUEUE_TYPES for level in range(delays.LEVELS)]


async def levels(client: Client, physical: str) -> dict[str, int]:
    """The level queues of ``physical`` that exist, with their ready counts. Levels are
    declared one by one, so each is probed; a probe of a missing queue closes its channel,
    and only then is another opened."""
    found: dict[str, int] = {}
    names = level_names(physical)
    while names:
        async with _getter(client) as raw:
            while names:
                name = names.pop(0)
                with driver_errors(client.options, f"count {name!r}"):
                    try:
                        ok = await raw.queue_declare(name, passive=True)
                    except aiormq.exceptions.ChannelNotFoundEntity:
                        break
                found[name] = int(ok.message_count or 0)
    return found


async def purge(client: Client, physical: str) -> int:
    """Purge the work queue and its delay levels; how many messages went."""
    total = 0
    for name in [physical, *await levels(client, physical)]:
        total += await _purge_one(client, name)
    return total


async def _purge_one(client: Client, name: str) -> int:
    channel = await client.channel()
    try:
        raw = await channel.get_underlay_channel()
        with driver_errors(client.options, f"purge {name!r}"):
            try:
                ok = await raw.queue_purge(name)
            except aiormq.exceptions.ChannelNotFoundEntity:
                return 0
        return int(ok.message_count or 0)
    finally:
        with contextlib.suppress(Exception):
            await channel.close()


async def browse(client: Client, queue: str, physical: str, limit: int
                 ) -> list[DeadLetter]:
    """Up to ``limit`` dead letters of ``queue``, oldest first, left in place."""
    found: list[DeadLetter] = []
    async with _getter(client) as raw:
        for _ in range(limit):
            message = await _get(client, raw, topology.dead_queue(physical))
            if message is None:
                break
            found.append(_dead_letter(queue, message))
    return found


async def scheduled(client: Client, queue: str, physical: str, limit: int) -> list[Envelope]:
    """The delayed messages of ``queue`` by ETA: every level browsed, each given back."""
    names = await levels(client, physical)
    found: list[Envelope] = []
    async with _getter(client) as raw:
        for name in names:
            while (message := await _get(client, raw, name)) is not None:
                found.append(_envelope(queue, message))
    return sorted(found, key=lambda e: e.eta or 0.0)[:limit]


def _envelope(queue: str, message: aiormq.abc.DeliveredMessage) -> Envelope:
    props = message.header.properties
    when = (props.headers or {}).get(ETA)
    return Envelope(str(props.message_id or ""), queue, message.body,
                    str(props.content_type or "application/json"), props.priority or 0,
                    when / 1000.0 if isinstance(when, int) else None)


async def replay(client: Client, clock: Clock, queue: str, physical: str,
                 ids: set[str] | None) -> int:
    """Send dead letters of ``queue`` (those of ``ids``, or all) back to it, each once."""
    replayed = 0
    async with _getter(client) as raw:
        while (message := await _get(client, raw, topology.dead_queue(physical))) is not None:
            dead = _dead_letter(queue, message)
            if ids is not None and dead.envelope.id not in ids:
                continue
            headers = dict(message.header.properties.headers or {})
            await publishing.publish(client, clock, [Outgoing(
                dead.envelope, _int(headers.get(ATTEMPT)), 0, {}, physical)])
            await raw.basic_ack(int(getattr(message.delivery, "delivery_tag", 0) or 0))
            replayed += 1
    return replayed


@contextlib.asynccontextmanager
async def _getter(client: Client) -> Any:
    """A channel for ``basic.get``; closing it gives back whatever was got and not acked."""
    channel = await client.channel()
    try:
        yield await channel.get_underlay_channel()
    finally:
        with contextlib.suppress(Exception):
            await channel.close()


async def _get(client: Client, raw: aiormq.abc.AbstractChannel,
               queue: str) -> aiormq.abc.DeliveredMessage | None:
    with driver_errors(client.options, f"read {queue!r}"):
        try:
            message = await raw.basic_get(queue, no_ack=False)
        except aiormq.exceptions.ChannelNotFoundEntity:
            return None
    return None if isinstance(message.delivery, Basic.GetEmpty) else message


def _dead_letter(queue: str, message: aiormq.abc.DeliveredMessage) -> DeadLetter:
    props = message.header.properties
    headers = dict(props.headers or {})
    envelope = Envelope(str(props.message_id or ""), queue, message.body,
                        str(props.content_type or "application/json"), props.priority or 0)
    reason = headers.get(REASON)
    if reason is None:  # dead-lettered by RabbitMQ itself (delivery limit, rejection)
        reason = f"rabbitmq: {_text(headers.get('x-first-death-reason', 'dead-lettered'))}"
    when = headers.get(FAILED_AT)
    return DeadLetter(envelope, _text(reason), when / 1000.0 if isinstance(when, int) else 0.0)


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _int(value: object) -> int:
    return int(value) if isinstance(value, int) and not isinstance(value, bool) else 0


def unique(names: Sequence[str]) -> list[str]:
    return list(dict.fromkeys(names))
