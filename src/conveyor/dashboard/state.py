"""The dashboard's state: the app, its task index, the event follower and what it feeds, and
the figures every page and the live stream are made of."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..brokers import DeadLetterAdmin, QueueAdmin, QueueStats
from ..errors import ConveyorError
from ..events import Event, alive
from ..queuecounts import queue_counts
from ..urls import mask_url
from .actions import Action, available
from .follower import Follower
from .index import TaskIndex
from .security import Auth
from .stats import SPAN, Activity
from .workers import WorkerView, group

if TYPE_CHECKING:
    from ..app import Conveyor
    from ..metrics import Metrics

log = logging.getLogger("conveyor.dashboard")

#: Seconds queue statistics are reused before the broker is asked again.
QUEUE_CACHE = 2.0
HOUSEKEEPING = 30.0


@dataclass(frozen=True, slots=True)
class QueueRow:
    stats: QueueStats
    received_rate: float
    finished_rate: float

    def to_dict(self) -> dict[str, Any]:
        s = self.stats
        return {"queue": s.queue, "ready": s.ready, "in_flight": s.in_flight,
                "delayed": s.delayed, "dead": s.dead, "received_rate": self.received_rate,
                "finished_rate": self.finished_rate}


def _metrics(app: Conveyor, follower: Follower) -> Metrics | None:
    """Prometheus metrics fed by ``follower``, when prometheus-client is installed."""
    try:
        from ..metrics import Metrics
    except ImportError:  # the metrics extra is optional: pages work without it
        return None
    metrics = Metrics(app, lambda: list(follower.processes.copy().values()))
    follower.observers.append(metrics)
    return metrics


class Dashboard:
    """Everything behind the pages of one app's dashboard."""

    def __init__(self, app: Conveyor, index: TaskIndex, auth: Auth) -> None:
        self.app, self.index, self.auth = app, index, auth
        self.activity = Activity()
        self.follower = Follower(app, index, [self.activity])
        self.metrics = _metrics(app, self.follower)
        self.actions: dict[str, Action] = available(app)
        self.broker_url = mask_url(app.broker.url)
        self.backend_url = mask_url(app.backend.url)
        self._queues: tuple[float, list[QueueStats]] = (float("-inf"), [])
        self._queues_lock = asyncio.Lock()

    @property
    def now(self) -> float:
        return self.app.clock.time()

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """Follow events (and tidy up now and then) for as long as the block runs."""
        await self.follower.start()
        since = self.now - SPAN
        self.activity.restore(await asyncio.to_thread(self.index.finished_since, since))
        loops = [asyncio.ensure_future(self.follower.run()),
                 asyncio.ensure_future(self._housekeeping())]
        try:
            yield
        finally:
            for loop in loops:
                loop.cancel()
            await asyncio.gather(*loops, return_exceptions=True)

    async def _housekeeping(self) -> None:
        while True:
            now = self.now
            self.activity.prune(now)
            self.follower.forget_old(now)
            try:
                await asyncio.to_thread(self.index.trim, now - 3600.0)
            except Exception:  # a full disk must not stop the dashboard
                log.exception("could not trim the task index")
            await asyncio.sleep(HOUSEKEEPING)

    # -- figures --------------------------------------------------------------------------
    def workers(self) -> list[WorkerView]:
        return group(self.follower.processes.values(), self.now)

    async def queue_stats(self) -> list[QueueStats]:
        """Every queue's counts, from the broker at most every ``QUEUE_CACHE`` seconds."""
        async with self._queues_lock:
            at, found = self._queues
            if self.now - at >= QUEUE_CACHE:
                living = alive(list(self.follower.processes.values()), self.now)
                try:
                    found = await asyncio.to_thread(self._read_queues, living)
                except ConveyorError as exc:
                    log.warning("cannot read queue statistics: %s", exc)
                self._queues = (self.now, found)
            return found

    def _read_queues(self, living: list[Event]) -> list[QueueStats]:
        broker = self.app.broker
        if not isinstance(broker, QueueAdmin):
            return []
        return queue_counts(broker, self.app.default_queue, living)

    async def queues(self) -> list[QueueRow]:
        rates = self.activity.rates(self.now)
        return [QueueRow(s, *rates.get(s.queue, (0.0, 0.0))) for s in await self.queue_stats()]

    @property
    def can_admin_queues(self) -> bool:
        return isinstance(self.app.broker, QueueAdmin)

    @property
    def can_admin_dead(self) -> bool:
        return isinstance(self.app.broker, DeadLetterAdmin)

    async def overview(self) -> dict[str, Any]:
        """The figures at the top of every page and on the overview."""
        now, workers = self.now, self.workers()
        queues = await self.queues()
        return {
            "workers_online": sum(w.online for w in workers),
            "processes_online": sum(w.processes_online for w in workers),
            "active": sum(len(w.active) for w in workers),
            "per_second": round(self.activity.per_second(now), 2),
            "failures_hour": self.activity.failures(now),
            "ready": sum(q.stats.ready for q in queues),
            "in_flight": sum(q.stats.in_flight for q in queues),
            "delayed": sum(q.stats.delayed for q in queues),
            "dead": sum(q.stats.dead for q in queues),
            "queues": [q.to_dict() for q in queues],
            "follower_error": self.follower.error,
        }
