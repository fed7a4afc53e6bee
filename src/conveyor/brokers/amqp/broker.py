"""The RabbitMQ broker: the core :class:`Broker` contract plus queue and dead-letter admin.

It carries messages only: results go to a separate result backend
(``Conveyor(broker="amqp://...", backend="redis://...")``). Async calls use a connection of the
caller's event loop; sync calls run the same code on a background loop (:mod:`.bridge`).
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Coroutine, Mapping, Sequence
from typing import Any, TypeVar

from ...clock import SYSTEM, Clock
from ..base import (
    Broker,
    Consumer,
    DeadLetter,
    DeadLetterAdmin,
    Envelope,
    QueueAdmin,
    QueueStats,
)
from . import admin, publishing, timeouts
from .bridge import LoopThread
from .connection import Client
from .consuming import AmqpConsumer
from .options import AmqpOptions
from .publishing import Outgoing
from .routing import target

T = TypeVar("T")


class AmqpBroker(Broker, QueueAdmin, DeadLetterAdmin):
    """Publish with confirms, consume with manual acks, delays in RabbitMQ (see the package)."""

    #: Counts are passive-declare snapshots: a message on its way to a consumer or between
    #: delay levels is in none of them for a moment.
    exact_counts = False

    def __init__(self, options: AmqpOptions, clock: Clock = SYSTEM) -> None:
        self.options = options
        self.url = options.url
        self.clock = clock
        self._clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Client] = (
            weakref.WeakKeyDictionary())
        self._bridge = LoopThread("conveyor-amqp")
        self._consumers: weakref.WeakSet[AmqpConsumer] = weakref.WeakSet()
        self._known: dict[str, None] = {"default": None}  # more as they are used

    def __repr__(self) -> str:
        return f"<AmqpBroker {self.url}>"

    async def client(self) -> Client:
        """The client of the running event loop (made on first use; it connects lazily)."""
        loop = asyncio.get_running_loop()
        client = self._clients.get(loop)
        if client is None:
            client = self._clients[loop] = Client(self.options)
        await client.connection()
        return client

    def _sync(self, coro: Coroutine[Any, Any, T]) -> T:
        return self._bridge.run(coro)

    # -- core -----------------------------------------------------------------------------
    def publish(self, envelopes: Sequence[Envelope]) -> None:
        self._sync(self.apublish(envelopes))

    async def apublish(self, envelopes: Sequence[Envelope]) -> None:
        for env in envelopes:
            self._known.setdefault(env.queue)
        await publishing.publish(await self.client(), self.clock,
                                 [Outgoing(env) for env in envelopes])

    def consume(self, queues: Sequence[str], *, prefetch: int, lease: float,
                record_started: bool = False) -> Consumer:
        for name in queues:
            target(name)  # a malformed name fails here, not in the worker's loop
            self._known.setdefault(name)
        consumer = AmqpConsumer(self, list(queues), prefetch, lease)
        self._consumers.add(consumer)
        return consumer

    def claims_ids(self, queue: str) -> bool:
        """RabbitMQ stores each publish as a message, so ids are claimed, except on a fanout
        queue: there every consumer gets its own copy of the id on purpose."""
        return target(queue).kind != "fanout"

    def startup_warnings(self, time_limits: Mapping[str, float | None]) -> list[str]:
        return timeouts.too_long(time_limits, self.options.consumer_timeout)

    def close(self) -> None:
        if self._bridge.started:
            loop = self._bridge.loop
            client = self._clients.pop(loop, None)
            if client is not None:
                self._bridge.run(client.close())
            self._bridge.stop()

    async def aclose(self) -> None:
        client = self._clients.pop(asyncio.get_running_loop(), None)
        if client is not None:
            await client.close()
        await asyncio.to_thread(self.close)

    # -- queue admin ----------------------------------------------------------------------
    def _physical(self, queue: str) -> str:
        return self.options.prefix + target(queue).queue

    def stats(self, queue: str) -> QueueStats:
        return self._sync(self.astats(queue))

    async def astats(self, queue: str) -> QueueStats:
        client, physical = await self.client(), self._physical(queue)
        held = sum(c.holding(queue) for c in list(self._consumers))
        return QueueStats(queue, await admin.count(client, physical), held,
                          await admin.delayed(client, physical),
                          await admin.count(client, f"{physical}.dead"))

    def consumers(self, queue: str) -> int:
        """How many consumers read ``queue`` now (from a passive declare)."""
        async def run() -> int:
            return (await admin.declared(await self.client(), self._physical(queue)))[1]
        return self._sync(run())

    def queues(self) -> list[str]:
        """``default`` and the queues this process published to or consumed: RabbitMQ lists
        queues only through its management plugin."""
        return [q for q in self._known if target(q).kind != "fanout"]

    def purge(self, queue: str) -> int:
        async def run() -> int:
            return await admin.purge(await self.client(), self._physical(queue))
        return self._sync(run())

    def scheduled(self, queue: str, limit: int = 100) -> list[Envelope]:
        async def run() -> list[Envelope]:
            return await admin.scheduled(await self.client(), queue, self._physical(queue),
                                         limit)
        return self._sync(run())

    # -- dead letters ---------------------------------------------------------------------
    def _dead_queues(self, queue: str | None) -> list[str]:
        return [queue] if queue is not None else self.queues()

    def dead_letters(self, queue: str | None = None, limit: int = 100) -> list[DeadLetter]:
        async def run() -> list[DeadLetter]:
            client, found = await self.client(), []
            for name in self._dead_queues(queue):
                found += await admin.browse(client, name, self._physical(name), limit)
            return sorted(found, key=lambda d: d.failed_at)[:limit]
        return self._sync(run())

    def replay_dead(self, ids: Sequence[str] | None = None, queue: str | None = None) -> int:
        async def run() -> int:
            client, total = await self.client(), 0
            wanted = set(ids) if ids is not None else None
            for name in self._dead_queues(queue):
                total += await admin.replay(client, self.clock, name, self._physical(name),
                                            wanted)
            return total
        return self._sync(run())

    def purge_dead(self, queue: str | None = None) -> int:
        async def run() -> int:
            client, total = await self.client(), 0
            for name in self._dead_queues(queue):
                total += await admin._purge_one(client, f"{self._physical(name)}.dead")
            return total
        return self._sync(run())
