"""Consuming: manual acks, a prefetch bound, attempts counted, delays checked on arrival.

Each consumer has its own channel with ``basic.qos(prefetch)`` (one bound shared by all its
queues when they are several classic queues), so RabbitMQ never hands it more than
``prefetch`` unacknowledged messages. A resize applies at once: a shared bound changes in
place, a per-consumer one by subscribing again (what the previous subscription holds counts on
top until settled). Its queues are subscribed in order, so what is waiting in an earlier queue
reaches it first; among the deliveries it holds, priority comes first, then queue order, then
arrival.

Counting hand-outs (``attempt``, ``deliveries``): a message carries how many hand-outs it had
before it was published (:mod:`.publishing` headers). A quorum queue adds RabbitMQ's
``x-delivery-count`` (returns since then). A classic queue only flags a redelivery, so a
redelivered message is published again with its counts raised by one and the redelivery acked:
its next hand-out then knows the exact count (a message that kills its worker every time meets
the delivery limit either way). That copy goes at the top priority (its own travels in a
header), so a killed worker's tasks run again ahead of the backlog, not after it, as do
messages given back (``release``, closing with prefetched messages) and the retries of a
message that came back so (a copy waiting for its killed holder's id claim, see
:mod:`conveyor.middleware.id_claims`). Settles that send a
copy (those, ``retry``, dead letters) publish the copy, wait for its confirm, then ack; a
message is never nacked back with requeue, which would count as a redelivery, except one the
worker abandoned (its settle failed), which is nacked back once a lease has passed, as a pull
store's expired lease returns it.

A message whose ETA is not reached yet (a delay longer than every level) is sent round the
delay levels again, unseen by the worker. When the channel or connection drops, held
deliveries are lost to this consumer (RabbitMQ redelivers them; their settles raise LeaseLost)
and the next ``__anext__`` subscribes again, raising BrokerUnavailable while RabbitMQ is down.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import logging
from typing import TYPE_CHECKING, Any

import aiormq.abc
from aio_pika.abc import AbstractChannel

from ...errors import BrokerError, LeaseLost
from ..base import Consumer, Delivery, Envelope, ResultWrite, _store, crash_point
from . import publishing, topology
from .connection import Client, driver_errors
from .publishing import ATTEMPT, DELIVERIES, ETA, PRIORITY, REASON, Outgoing
from .routing import target

if TYPE_CHECKING:
    from .broker import AmqpBroker

log = logging.getLogger("conveyor.broker.amqp")

_Held = tuple[int, int, int, aiormq.abc.DeliveredMessage, str, str]


class AmqpConsumer(Consumer):
    """Deliveries from ``queues`` on a channel of the current event loop's connection."""

    def __init__(self, broker: AmqpBroker, queues: list[str], prefetch: int,
                 lease: float = 30.0) -> None:
        if prefetch < 1:
            raise ValueError("prefetch must be at least 1")
        self.broker = broker
        self.queues = queues
        self.prefetch = prefetch
        self.lease = lease
        self._requeues: set[asyncio.Future[None]] = set()
        self.client: Client | None = None
        self._channel: AbstractChannel | None = None
        self._raw: aiormq.abc.AbstractChannel | None = None
        self._tags: list[str] = []
        self._subscribed: list[tuple[str, str]] = []  # (queue, physical queue) by rank
        self._qos_lock = asyncio.Lock()  # a resize's re-subscribe against close's cancels
        self._buffer: list[_Held] = []
        self._seq = itertools.count()
        self._wake = asyncio.Event()
        self._closed = False
        self._giving_back = False  # while close() gives prefetched messages back
        self.held: set[AmqpDelivery] = set()
        self._closer: asyncio.Future[None] | None = None
        self._closing: asyncio.Future[None] | None = None

    async def __anext__(self) -> Delivery:
        while not self._closed:
            if self._raw is None or self._raw.is_closed:
                await self._subscribe()
                continue
            if self._buffer:
                *_, message, queue, physical = heapq.heappop(self._buffer)
                delivery = await self._admit(message, queue, physical)
                if delivery is not None:
                    return delivery
                continue
            self._wake.clear()
            await self._wake.wait()
        raise StopAsyncIteration

    async def _subscribe(self) -> None:
        """(Re)open the channel and subscribe to every queue, in order."""
        self._lose_all()
        self.client = client = await self.broker.client()
        channel = await client.channel()
        raw = await channel.get_underlay_channel()
        channel.close_callbacks.add(lambda *_: self._wake.set())
        bound = self.prefetch
        with driver_errors(client.options, "consume"):
            await raw.basic_qos(prefetch_count=bound, global_=self._shared_qos())
            self._tags, self._subscribed = [], []
            for rank, name in enumerate(self.queues):
                physical = await _consumed_queue(client, raw, name)
                ok = await raw.basic_consume(physical, self._receiver(rank, name, physical))
                self._tags.append(str(ok.consumer_tag))
                self._subscribed.append((name, physical))
        self._channel, self._raw = channel, raw
        if self.prefetch != bound:  # resized while subscribing
            self.resize(self.prefetch)

    def _shared_qos(self) -> bool:
        """One bound for the channel across its queues (RabbitMQ's global QoS, changed in place
        by a resize). A single queue needs none; quorum queues only know per-consumer bounds:
        with several quorum queues each may hold ``prefetch``."""
        return len(self.queues) > 1 and not self.broker.options.quorum

    def _receiver(self, rank: int, name: str, physical: str) -> Any:
        async def receive(message: aiormq.abc.DeliveredMessage) -> None:
            crash_point()  # the test hook: handed out, not yet held
            priority = message.header.properties.priority or 0
            heapq.heappush(self._buffer, (-priority, rank, next(self._seq), message, name,
                                          physical))
            self._wake.set()
        return receive

    def _lose_all(self) -> None:
        """The channel is gone: what it held returns to RabbitMQ, not through us."""
        self._buffer.clear()
        for delivery in list(self.held):
            delivery.channel_lost = True
        self._channel = self._raw = None

    async def _admit(self, message: aiormq.abc.DeliveredMessage, queue: str,
                     physical: str) -> AmqpDelivery | None:
        """The delivery to hand out, or None when the message went elsewhere (early, counted
        again, malformed)."""
        props = message.header.properties
        headers: dict[str, Any] = dict(props.headers or {})
        if not props.message_id:
            await self._reject(message)  # no id: nothing can track it; RabbitMQ dead-letters it
            return None
        envelope = _envelope(message, queue, headers)
        attempt, deliveries = _int(headers.get(ATTEMPT)), _int(headers.get(DELIVERIES))
        if envelope.eta is not None and envelope.eta > self.broker.clock.time():
            await self._resend(message, Outgoing(envelope, attempt, deliveries,
                                                 _keep(headers), physical))
            return None
        if self.broker.options.quorum:
            returned = _int(headers.get("x-delivery-count"))
        elif message.delivery.redelivered:  # type: ignore[union-attr]
            await self._resend(message, Outgoing(envelope, attempt + 1, deliveries + 1,
                                                 _keep(headers), physical, ahead=True))
            return None
        else:
            returned = 0
        delivery = AmqpDelivery(self, message, envelope, physical, attempt + returned + 1,
                                deliveries + returned + 1, headers)
        self.held.add(delivery)
        return delivery

    async def _resend(self, message: aiormq.abc.DeliveredMessage, out: Outgoing) -> None:
        try:
            await self.send_then_ack(message, [out])
        except BrokerError as exc:  # left unacked: RabbitMQ hands it out again later
            log.warning("could not send %s round again: %s", out.envelope.id, exc)

    async def _reject(self, message: aiormq.abc.DeliveredMessage) -> None:
        assert self._raw is not None
        with contextlib.suppress(Exception):
            await self._raw.basic_reject(_tag(message), requeue=False)

    async def send_then_ack(self, message: aiormq.abc.DeliveredMessage,
                            messages: list[Outgoing]) -> None:
        """Publish (confirmed), then ack ``message``: never both lost, at worst both kept."""
        assert self.client is not None
        await publishing.publish(self.client, self.broker.clock, messages)
        await self.ack(message)

    async def ack(self, message: aiormq.abc.DeliveredMessage) -> None:
        channel = message.channel
        if channel.is_closed or channel is not self._raw:
            raise LeaseLost("the channel that delivered this message closed; RabbitMQ hands"
                            " it out again")
        try:
            await channel.basic_ack(_tag(message))
        except Exception as exc:
            raise LeaseLost(f"could not ack: {type(exc).__name__}; RabbitMQ hands it out"
                            " again") from None

    def requeue_later(self, message: aiormq.abc.DeliveredMessage) -> None:
        """Give an abandoned message back to RabbitMQ once a lease has passed (a nack with
        requeue: its next hand-out counts it as a redelivery), unless its channel closed first,
        which gives it back anyway. Until then it holds one of the channel's prefetch slots."""
        def start() -> None:
            future = asyncio.ensure_future(self._requeue(message))
            self._requeues.add(future)
            future.add_done_callback(self._requeues.discard)
        asyncio.get_running_loop().call_later(self.lease, start)

    async def _requeue(self, message: aiormq.abc.DeliveredMessage) -> None:
        channel = message.channel
        if channel.is_closed or channel is not self._raw:
            return
        try:
            await channel.basic_nack(_tag(message), requeue=True)
        except Exception as exc:  # the channel went: RabbitMQ hands it out again
            log.debug("could not requeue an abandoned message: %s", exc)

    def holding(self, queue: str) -> int:
        """Messages of ``queue`` this consumer holds unacknowledged: handed out or buffered."""
        return (sum(1 for d in self.held if d.envelope.queue == queue)
                + sum(1 for held in self._buffer if held[4] == queue))

    def resize(self, prefetch: int) -> None:
        """A new bound, in force at once (a running :meth:`_requalify`)."""
        self.prefetch = max(1, prefetch)
        raw = self._raw
        if raw is not None and not raw.is_closed:
            task = asyncio.ensure_future(self._requalify(raw))
            task.add_done_callback(lambda t: t.cancelled() or t.exception())

    async def _requalify(self, raw: aiormq.abc.AbstractChannel) -> None:
        """Apply ``self.prefetch`` to the subscribed channel. A channel-wide (global) bound
        changes at once; a per-consumer one binds only consumers made after it, so each queue
        is subscribed again (its held deliveries stay on the channel, unacked)."""
        async with self._qos_lock:
            if raw is not self._raw or raw.is_closed or self._closed:
                return
            shared = self._shared_qos()
            await raw.basic_qos(prefetch_count=self.prefetch, global_=shared)
            if shared:
                return
            for rank, (name, physical) in enumerate(self._subscribed):
                await raw.basic_cancel(self._tags[rank])
                if raw is not self._raw or self._closed:
                    return
                ok = await raw.basic_consume(physical, self._receiver(rank, name, physical))
                self._tags[rank] = str(ok.consumer_tag)

    def settled(self, delivery: AmqpDelivery) -> None:
        self.held.discard(delivery)
        if self._closed and not self.held and not self._giving_back:
            self._closer = asyncio.ensure_future(self._close_channel())

    async def close(self) -> None:
        """Stop the subscriptions, give back prefetched messages, keep the channel open until
        the deliveries already handed out are settled. A second call waits for the first."""
        if self._closing is None:
            self._closing = asyncio.ensure_future(self._close())
        await asyncio.shield(self._closing)

    async def _close(self) -> None:
        self._closed = True
        self._wake.set()
        raw = self._raw
        if raw is None or raw.is_closed:
            return
        self._giving_back = True  # the channel must outlive each copy's ack, or both run
        try:
            async with self._qos_lock:
                with contextlib.suppress(Exception):
                    for tag in self._tags:
                        await raw.basic_cancel(tag)
            await self._give_back_buffer()
        finally:
            self._giving_back = False
        if not self.held:
            await self._close_channel()

    async def _give_back_buffer(self) -> None:
        waiting, self._buffer = self._buffer, []
        for *_, message, queue, physical in sorted(waiting):
            headers = dict(message.header.properties.headers or {})
            env = _envelope(message, queue, headers)
            try:  # ahead of the backlog: it was at the head when it came
                await self.send_then_ack(message, [Outgoing(
                    env, _int(headers.get(ATTEMPT)), _int(headers.get(DELIVERIES)),
                    _keep(headers), physical, ahead=True)])
            except BrokerError as exc:
                log.warning("could not give back %s (RabbitMQ returns it): %s", env.id, exc)

    async def _close_channel(self) -> None:
        channel, self._channel, self._raw = self._channel, None, None
        if channel is not None and not channel.is_closed:
            with contextlib.suppress(Exception):
                await channel.close()


async def _consumed_queue(client: Client, channel: aiormq.abc.AbstractChannel,
                          name: str) -> str:
    """Declare what consuming ``name`` needs; the physical queue to subscribe to."""
    where = target(name)
    prefix = client.options.prefix
    if where.direct:
        await topology.work_queue(client, prefix + name)
        return prefix + name
    await topology.exchange(client, where)
    if where.kind == "fanout":  # a queue of this consumer's own
        ok = await channel.queue_declare("", exclusive=True, auto_delete=True,
                                         arguments={"x-max-priority": topology.MAX_PRIORITY})
        physical = str(ok.queue)
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        done.set_result(None)
        client.declared[("queue", physical)] = done
    else:
        physical = prefix + where.queue
        await topology.work_queue(client, physical)
    await channel.queue_bind(physical, prefix + where.exchange, routing_key=where.key)
    return physical


class AmqpDelivery(Delivery):
    """A message held by an :class:`AmqpConsumer` until acked (or its channel closes)."""

    def __init__(self, consumer: AmqpConsumer, message: aiormq.abc.DeliveredMessage,
                 envelope: Envelope, physical: str, attempt: int, deliveries: int,
                 headers: dict[str, Any]) -> None:
        self.envelope = envelope
        self.attempt = attempt
        self.deliveries = deliveries
        self.record = None
        self.channel_lost = False
        self._consumer = consumer
        self._message = message
        self._physical = physical
        self._headers = _keep(headers)
        self._ahead = PRIORITY in headers  # it came back ahead of the backlog: it stays so
        self._settled = False

    @property
    def lost(self) -> bool:
        return self.channel_lost or self._message.channel.is_closed

    async def ack(self, result: ResultWrite | None = None) -> None:
        await self._settle(result, [])

    async def retry(self, delay: float, body: bytes | None = None,
                    result: ResultWrite | None = None, *, keep_count: bool = False) -> None:
        env = self.envelope
        eta = self._consumer.broker.clock.time() + delay if delay > 0 else None
        copy = Envelope(env.id, env.queue, env.body if body is None else body,
                        env.content_type, env.priority, eta)
        counted = max(self.deliveries - 1, 0) if keep_count else 0
        await self._settle(result, [Outgoing(copy, self.attempt, counted, self._headers,
                                             self._physical, ahead=self._ahead)])

    async def dead_letter(self, reason: str, result: ResultWrite | None = None) -> None:
        broker = self._consumer.broker
        headers = {**self._headers, REASON: reason[:2000],
                   publishing.FAILED_AT: int(broker.clock.time() * 1000)}
        prefix = broker.options.prefix
        out = Outgoing(self.envelope, self.attempt, 0, headers, self._physical,
                       exchange=f"{prefix}{topology.DEAD_EXCHANGE}")
        await self._settle(result, [out])

    async def release(self) -> None:
        await self._settle(None, [Outgoing(self.envelope, self.attempt, self.deliveries - 1,
                                           self._headers, self._physical, ahead=True)])

    async def _settle(self, result: ResultWrite | None, sends: list[Outgoing]) -> None:
        if self._settled:
            return
        if result is not None:
            await _store(self._consumer.broker, result)
        if self.lost:
            self._done()
            raise LeaseLost(f"the channel that delivered {self.envelope.id} closed; RabbitMQ"
                            " hands it out again")
        try:
            if sends:
                await self._consumer.send_then_ack(self._message, sends)
            else:
                await self._consumer.ack(self._message)
        except LeaseLost:
            self._done()
            raise
        self._done()

    def _done(self) -> None:
        self._settled = True
        self._consumer.settled(self)

    def abandon(self) -> None:
        """Unsettled: RabbitMQ hands the message out again after a lease, or sooner if this
        channel closes."""
        if not self._settled:
            self._consumer.requeue_later(self._message)
        self._done()


def _envelope(message: aiormq.abc.DeliveredMessage, queue: str,
              headers: dict[str, Any]) -> Envelope:
    """The envelope of a delivered message; a copy sent ahead keeps its own priority in a
    header."""
    props = message.header.properties
    own = headers.get(PRIORITY)
    return Envelope(str(props.message_id or ""), queue, message.body,
                    str(props.content_type or "application/json"),
                    _int(own) if own is not None else props.priority or 0,
                    _float(headers.get(ETA)))


def _keep(headers: dict[str, Any]) -> dict[str, Any]:
    """Headers a copy keeps: the caller's, without the counts and RabbitMQ's death records."""
    drop = {ATTEMPT, DELIVERIES, ETA, REASON, PRIORITY, publishing.FAILED_AT, "x-death",
            "x-first-death-exchange", "x-first-death-queue", "x-first-death-reason",
            "x-delivery-count", "x-last-death-exchange", "x-last-death-queue",
            "x-last-death-reason"}
    return {k: v for k, v in headers.items() if k not in drop}


def _tag(message: aiormq.abc.DeliveredMessage) -> int:
    return int(getattr(message.delivery, "delivery_tag", 0) or 0)


def _int(value: object) -> int:
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0


def _float(value: object) -> float | None:
    """Epoch seconds from a header of epoch milliseconds."""
    return value / 1000.0 if isinstance(value, int) and not isinstance(value, bool) else None
