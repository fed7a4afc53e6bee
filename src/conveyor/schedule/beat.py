"""The beat: sends each periodic entry's ticks, exactly once each, from any number of beats.

Every beat computes the same ticks (schedules are pure; intervals are anchored), so a tick can
be named: its message id is derived from the app, the entry and the tick's instant, and before
sending it a beat takes the key ``beat:<app>:tick:<entry>:<instant>`` with put-if-absent. A
second beat, a restarted one, or one whose lease ran out while it was paused, finds the key and
sends nothing. On top of that one beat at a time leads (a lease in the store, renewed every
third of ``beat_lease``), so the others only stand by; when the leader is killed another takes
over within about ``beat_lease`` seconds.

The tick each entry last sent is kept in the store (``beat:<app>:last:<entry>``, with the
schedule's key), so a beat that starts, or takes over, knows what was missed and applies the
entry's ``catch_up`` policy (see :mod:`conveyor.schedule.entries`). Each tick's message carries
its instant in ``options["scheduled_for"]`` (``self.request.scheduled_for`` in the task).

All state is in the result backend (a Coordination store): nothing on one machine's disk.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import orjson

from ..canvas.launch import Plan, asend, coordination
from ..errors import BrokerError
from .due import baseline, due
from .entries import Entry, entries
from .leader import Leader

if TYPE_CHECKING:
    from ..app import Conveyor

log = logging.getLogger("conveyor.beat")

#: How long a beat's claim on a tick lasts before the tick may be claimed again (the claim is
#: replaced by a "sent" mark a moment later, unless the beat died in between).
CLAIM_TTL = 10.0
#: How long the last-sent tick of an entry is kept (longer than any sane downtime).
LAST_TTL = 400 * 86400.0
SENT = b"sent"


def tick_id(app: Conveyor, entry: str, tick: datetime) -> str:
    """The task id of an entry's tick: the same in every process, for every beat."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"conveyor-beat:{app.name}:{entry}:"
                                              f"{tick.isoformat()}"))


class Beat:
    """Sends the periodic entries of ``app`` (all of them by default) when they are due.

    ``await run()`` until :meth:`stop`; :meth:`step` is one pass, for tests with a fake clock.
    """

    def __init__(self, app: Conveyor, *, schedule: Sequence[Entry] | None = None,
                 lease: float | None = None, name: str | None = None) -> None:
        self.app = app
        self.clock = app.clock
        self.entries = list(entries(app) if schedule is None else schedule)
        self.name = name or f"{socket.gethostname()}.{os.getpid()}.{secrets.token_hex(3)}"
        self.store = coordination(app)
        self.leader = Leader(self.store, f"beat:{app.name}:leader", self.name,
                             app.conf.beat_lease if lease is None else lease)
        self._last: dict[str, datetime] = {}
        self._stopping = asyncio.Event()

    async def run(self) -> None:
        """Send due ticks while leading, stand by otherwise, until :meth:`stop`."""
        log.info("beat %s starting: %s", self.name,
                 "; ".join(e.describe() for e in self.entries) or "no periodic entries")
        try:
            while not self._stopping.is_set():
                wake = await self.step()
                delay = max(0.0, wake - self.clock.time())
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), delay)
        finally:
            with contextlib.suppress(BrokerError):
                await self.leader.release()
            log.info("beat %s stopped", self.name)

    def stop(self) -> None:
        self._stopping.set()

    async def step(self) -> float:
        """Renew or take the lead and send what is due; the epoch time to look again."""
        now = self.clock.time()
        wake = now + self.leader.ttl / 3
        try:
            if not await self.leader.refresh():
                self._last.clear()
                return wake
            resumed = self.leader.resumed
            if resumed:
                self._last.clear()
            for entry in self.entries:
                wake = min(wake, await self._entry(entry, now, resumed))
        except BrokerError as exc:  # the store is down: look again soon
            log.warning("beat %s: %s", self.name, exc)
        return wake

    async def _entry(self, entry: Entry, now_epoch: float, resumed: bool) -> float:
        """Send the entry's due ticks; when its next tick is due."""
        now = datetime.fromtimestamp(now_epoch, UTC)
        last = self._last.get(entry.name)
        if last is None or entry.schedule.next_run(last) <= now:
            last = await self._stored_last(entry, now)
            found = due(entry.schedule, last, now, entry.catch_up, resumed)
            for tick in found.send:
                if not await self._send(entry, tick):  # another beat is sending it: wait
                    self._last[entry.name] = last
                    return now_epoch + 1.0
                last = tick
                await self._reach(entry, tick)
            if found.reached > last:  # skipped ticks
                last = found.reached
                await self._reach(entry, last)
            self._last[entry.name] = last
        return entry.schedule.next_run(last).timestamp()

    async def _send(self, entry: Entry, tick: datetime) -> bool:
        """Send the tick unless it was sent; False when another beat claimed it just now."""
        key = f"beat:{self.app.name}:tick:{entry.name}:{tick.isoformat()}"
        mine = b"claimed:" + self.leader.holder
        held = await self.store.aput_if_absent(key, mine, CLAIM_TTL)
        if held == SENT:
            return True
        if held is not None and held != mine:
            return False
        task_id = tick_id(self.app, entry.name, tick)
        node = entry.signature.set(task_id=task_id).freeze()
        node["extra"] = {"scheduled_for": tick.timestamp(), "periodic": entry.name}
        plan = Plan(self.app, None)
        plan.add(node)
        await asend(plan)
        await self.store.aset_value(key, SENT, self._guard_ttl(entry, tick))
        log.info("beat: sent %s for %s (task %s)", entry.name, tick.isoformat(), task_id)
        return True

    @staticmethod
    def _guard_ttl(entry: Entry, tick: datetime) -> float:
        """A few periods, and at least ten minutes: past that no beat sees the tick as due."""
        period = (entry.schedule.next_run(tick) - tick).total_seconds()
        return max(3 * period, 600.0)

    def _last_key(self, entry: Entry) -> str:
        return f"beat:{self.app.name}:last:{entry.name}"

    async def _stored_last(self, entry: Entry, now: datetime) -> datetime:
        """The tick the entry reached, from the store; a new (or changed) entry starts now."""
        stored = await self.store.aget_value(self._last_key(entry))
        if stored is not None:
            found = orjson.loads(stored)
            if found.get("schedule") == entry.schedule.key():
                return datetime.fromisoformat(found["tick"])
        start = baseline(entry.schedule, now)
        await self.store.aset_value(self._last_key(entry), _last_value(entry, start), LAST_TTL)
        return start

    async def _reach(self, entry: Entry, tick: datetime) -> None:
        """Record that the entry reached ``tick``; never moves the record back."""
        key, value = self._last_key(entry), _last_value(entry, tick)
        for _ in range(3):
            stored = await self.store.aget_value(key)
            if stored is not None:
                found = orjson.loads(stored)
                if (found.get("schedule") == entry.schedule.key()
                        and datetime.fromisoformat(found["tick"]) >= tick):
                    return
            if await self.store.acompare_and_set(key, stored, value, LAST_TTL):
                return


def _last_value(entry: Entry, tick: datetime) -> bytes:
    return orjson.dumps({"tick": tick.isoformat(), "schedule": entry.schedule.key()})

