"""The event follower: one loop that reads the app's event log and feeds everything the
dashboard and the metrics show.

It reads a batch of events after its cursor, applies it to the task index (which stores the
cursor in the same transaction), hands it to each observer (charts, Prometheus metrics), keeps
the latest heartbeat of every worker process, and notes which tasks changed so live pages can
be told. Without an index (``conveyor metrics``) the cursor lives in memory and starts at the
newest event, as counters of a fresh process do.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol

from .. import events as ev
from ..errors import BrokerError
from ..events import Event
from ..middleware.events import require_event_log

if TYPE_CHECKING:
    from ..app import Conveyor
    from .index import TaskIndex

log = logging.getLogger("conveyor.dashboard")

BATCH = 500
#: After a batch smaller than BATCH, seconds to let events gather before reading again: a few
#: large batches cost far less than many small ones (one transaction and wake-up each), and
#: live pages tick once a second anyway.
GATHER = 0.25
#: How long workers that went offline stay listed.
FORGET_OFFLINE = 3600.0
#: Changed task ids remembered for live pages; a page further behind reloads its list.
CHANGES = 2000


class Observer(Protocol):
    def observe(self, events: Sequence[Event]) -> None: ...


def _order(event_id: str) -> tuple[int, ...] | None:
    """An event id as comparable numbers (``"42"``, ``"1700000000000-3"``), or None."""
    try:
        return tuple(int(part) for part in event_id.split("-"))
    except ValueError:
        return None


class Follower:
    """Follows ``app``'s events into ``index`` (optional) and ``observers``."""

    def __init__(self, app: Conveyor, index: TaskIndex | None = None,
                 observers: Sequence[Observer] = (), wait: float = 1.0) -> None:
        self.app, self.index, self.observers, self.wait = app, index, list(observers), wait
        self.log = require_event_log(app)
        self.processes: dict[str, Event] = {}
        self.names: set[str] = set()
        self.version = 0
        self.changes: deque[tuple[int, str]] = deque(maxlen=CHANGES)
        self.caught_up = asyncio.Event()
        self.error: str = ""
        self._cursor: str | None = None

    async def start(self) -> None:
        """Load what the index kept and where to resume; seed the heartbeats."""
        if self.index is not None:
            index = self.index
            for event in await asyncio.to_thread(index.processes):
                self.processes[event.process] = event
            self.names.update(await asyncio.to_thread(index.names))
            self._cursor = await self._resume_point(index.cursor)
        else:
            self._cursor = await self.log.last_event_id() or "0"
        for event in await self.log.heartbeats():
            known = self.processes.get(event.process)
            if known is None or known.at <= event.at:
                self.processes[event.process] = event

    async def _resume_point(self, stored: str | None) -> str:
        if stored is None:
            return "0"  # a new index starts with everything the store still keeps
        last = await self.log.last_event_id()
        mine, theirs = _order(stored), _order(last or "0")
        if mine is not None and theirs is not None and theirs < mine:
            log.warning("the event log restarted below the index's cursor; reading it anew")
            assert self.index is not None
            await asyncio.to_thread(self.index.reset_cursor)
            return "0"
        return stored

    async def run(self) -> None:
        """Follow until cancelled; store errors are logged and retried, never fatal."""
        backoff = 0.5
        while True:
            try:
                batch = await self.log.read_events(self._cursor, BATCH, self.wait)
            except BrokerError as exc:
                self.error = str(exc)
                log.warning("cannot read events, retrying in %.1fs: %s", backoff, exc)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 10.0)
                continue
            self.error, backoff = "", 0.5
            if batch:
                await self.feed(batch)
            if len(batch) < BATCH:
                self.caught_up.set()
                if batch:
                    await asyncio.sleep(GATHER)

    async def feed(self, batch: Sequence[Event]) -> None:
        """Apply one batch everywhere (also used by tests and actions)."""
        if self.index is not None:
            await asyncio.to_thread(self.index.apply, batch)
        self._cursor = batch[-1].id or self._cursor
        for observer in self.observers:
            observer.observe(batch)
        for event in batch:
            if event.kind in ev.WORKER_KINDS:
                self.processes[event.process] = event
            elif event.task_id:
                self.version += 1
                self.changes.append((self.version, event.task_id))
                if event.task:
                    self.names.add(event.task)

    def changed_since(self, version: int) -> list[str] | None:
        """Ids of tasks changed after ``version`` (no repeats), or None when ``version`` is
        older than what is remembered."""
        if version >= self.version:
            return []
        if self.changes and self.changes[0][0] > version + 1:
            return None
        return list(dict.fromkeys(tid for v, tid in self.changes if v > version))

    def forget_old(self, now: float) -> None:
        """Stop listing processes not heard from in ``FORGET_OFFLINE`` seconds."""
        for key in [k for k, e in self.processes.items() if now - e.at > FORGET_OFFLINE]:
            del self.processes[key]
