"""The in-process store: the reference implementation of the broker contract and a test double.

``memory://`` opens a fresh store; ``memory://NAME`` shares one store per name within the process
(so a producer and a worker in one test can meet). Nothing survives the process. Thread-safe:
producers may publish from any thread while consumers run on an event loop.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import itertools
import secrets
import threading
from collections.abc import Sequence
from dataclasses import dataclass, replace
from urllib.parse import urlsplit

from ..clock import SYSTEM, Clock, Deadline
from ..errors import LeaseLost
from ..events import WORKER_KINDS, WORKER_OFFLINE, Event, Retention
from . import memory_control as mc
from .base import (
    UNTRACKED_START,
    Claim,
    ClaimBatch,
    ConcurrencySlots,
    ControlLog,
    Coordination,
    DeadLetter,
    DeadLetterAdmin,
    DelayedWake,
    Envelope,
    EventLog,
    PullBroker,
    QueueAdmin,
    QueueStats,
    RateLimiter,
    RateWindow,
    ResultBackend,
    Revocations,
    Settle,
    StoredResult,
    Waiter,
)

_NAMED: dict[str, MemoryStore] = {}
_NAMED_LOCK = threading.Lock()


def open_store(url: str = "memory://", *, clock: Clock = SYSTEM, **_: object) -> MemoryStore:
    """A fresh store for ``memory://``, the shared named one for ``memory://NAME``."""
    name = urlsplit(url).netloc
    if not name:
        return MemoryStore(url, clock)
    with _NAMED_LOCK:
        return _NAMED.setdefault(name, MemoryStore(url, clock))


@dataclass(slots=True)
class _Entry:
    envelope: Envelope
    seq: int
    attempt: int = 0
    deliveries: int = 0
    token: str | None = None
    lease_until: float = 0.0
    dead_reason: str | None = None
    failed_at: float = 0.0


class MemoryStore(PullBroker, QueueAdmin, DeadLetterAdmin, ResultBackend, EventLog,
                  Coordination, ControlLog, Revocations, RateLimiter, ConcurrencySlots,
                  DelayedWake):
    """Broker and result backend in plain dictionaries, guarded by one lock."""

    def __init__(self, url: str = "memory://", clock: Clock = SYSTEM) -> None:
        self.url = url
        self.clock = clock
        self._lock = threading.Lock()
        self._seq = itertools.count()
        self._messages: dict[str, _Entry] = {}
        self._results: dict[str, tuple[StoredResult, float]] = {}
        self._members: dict[str, set[str]] = {}
        self._events: collections.deque[Event] = collections.deque()
        self._event_seq = itertools.count(1)
        self._heartbeats: dict[str, Event] = {}
        self._values: dict[str, tuple[bytes, float]] = {}
        self._control = mc.ControlStream()
        self._revoked: dict[str, float] = {}
        self._rates: dict[str, mc.RateState] = {}
        self._slots: dict[str, mc.SlotLine] = {}
        self._bell = _Bell()

    def __repr__(self) -> str:
        return f"MemoryStore({self.url!r})"

    # -- producer -------------------------------------------------------------------------
    def publish(self, envelopes: Sequence[Envelope]) -> None:
        with self._lock:
            for env in envelopes:  # an id already stored stays as it is (one job per id)
                if env.id not in self._messages:
                    self._messages[env.id] = _Entry(env, next(self._seq), 0)
        self._bell.ring()

    async def apublish(self, envelopes: Sequence[Envelope]) -> None:
        self.publish(envelopes)

    # -- consumer primitives --------------------------------------------------------------
    async def _claim(
        self, queues: Sequence[str], limit: int, lease: float
    ) -> tuple[list[Claim], float | None]:
        now = self.clock.time()
        order = {q: i for i, q in enumerate(queues)}
        with self._lock:
            live = [e for e in self._messages.values()
                    if e.envelope.queue in order and e.dead_reason is None]
            due = [e for e in live if self._due(e, now)]
            due.sort(key=lambda e: (-e.envelope.priority, order[e.envelope.queue], e.seq))
            claims = [self._hand_out(e, now + lease) for e in due[:limit]]
            later = [self._due_at(e) for e in live if not self._due(e, now)]
        return claims, min(later, default=None)

    async def _claim_batch(self, queues: Sequence[str], limit: int, lease: float, *,
                           settles: Sequence[Settle] = (),
                           record_started: bool = False) -> ClaimBatch:
        batch = await super()._claim_batch(queues, limit, lease, settles=settles)
        if record_started:
            with self._lock:
                batch.claims = [self._mark_started(c) for c in batch.claims]
        return batch

    def _mark_started(self, claim: Claim) -> Claim:
        """The claim with its record's state; a tracked, unfinished record becomes STARTED."""
        record = self._live_result(claim.envelope.id)
        if record is None:
            return replace(claim, record="")
        if not (record.final or record.data == UNTRACKED_START or record.attempt > claim.attempt):
            record = StoredResult(b"", "STARTED", claim.attempt, False)
            self._results[claim.envelope.id] = (record, self._results[claim.envelope.id][1])
        return replace(claim, record=record.state)

    @staticmethod
    def _due(entry: _Entry, now: float) -> bool:
        eta = entry.envelope.eta
        return (eta is None or eta <= now) and (entry.token is None or entry.lease_until <= now)

    @staticmethod
    def _due_at(entry: _Entry) -> float:
        return max(entry.envelope.eta or 0.0, entry.lease_until if entry.token else 0.0)

    @staticmethod
    def _hand_out(entry: _Entry, lease_until: float) -> Claim:
        entry.attempt += 1
        entry.deliveries += 1
        entry.token = secrets.token_hex(8)
        entry.lease_until = lease_until
        return Claim(entry.envelope, entry.attempt, entry.token, entry.deliveries)

    async def _wait(self, queues: Sequence[str], timeout: float) -> None:
        await self._bell.wait(timeout)

    def _held(self, claim: Claim) -> _Entry | None:
        """The entry if ``claim`` still holds it; None if it is gone; LeaseLost if taken over."""
        entry = self._messages.get(claim.envelope.id)
        if entry is None or entry.dead_reason is not None:
            return None
        if entry.token != claim.token:
            raise LeaseLost(f"lease of message {claim.envelope.id} passed to another consumer")
        return entry

    async def _settle_ack(self, claim: Claim) -> None:
        with self._lock:
            if self._held(claim) is not None:
                del self._messages[claim.envelope.id]

    async def _settle_retry(self, claim: Claim, delay: float, body: bytes | None,
                            keep_count: bool = False) -> None:
        with self._lock:
            entry = self._held(claim)
            if entry is not None:
                env = entry.envelope
                entry.envelope = replace(env, body=env.body if body is None else body,
                                         eta=self.clock.time() + delay)
                kept = max(entry.deliveries - 1, 0) if keep_count else 0
                entry.token, entry.seq, entry.deliveries = None, next(self._seq), kept
        self._bell.ring()

    async def _settle_dead(self, claim: Claim, reason: str) -> None:
        with self._lock:
            entry = self._held(claim)
            if entry is not None:
                entry.token, entry.dead_reason, entry.failed_at = None, reason, self.clock.time()

    async def _settle_release(self, claim: Claim) -> None:
        with self._lock:
            entry = self._held(claim)
            if entry is not None:
                entry.token, entry.deliveries = None, max(entry.deliveries - 1, 0)
        self._bell.ring()

    async def _renew(self, claims: Sequence[Claim], lease: float) -> set[str]:
        return self._renew_blocking(claims, lease)

    def _renew_blocking(self, claims: Sequence[Claim], lease: float) -> set[str]:
        lost: set[str] = set()
        with self._lock:
            for claim in claims:
                entry = self._messages.get(claim.envelope.id)
                if entry is None or entry.token != claim.token:
                    lost.add(claim.token)
                else:
                    entry.lease_until = self.clock.time() + lease
        return lost

    # -- admin ----------------------------------------------------------------------------
    def stats(self, queue: str) -> QueueStats:
        now = self.clock.time()
        with self._lock:
            entries = [e for e in self._messages.values() if e.envelope.queue == queue]
        dead = sum(e.dead_reason is not None for e in entries)
        live = [e for e in entries if e.dead_reason is None]
        held = sum(e.token is not None and e.lease_until > now for e in live)
        delayed = sum((e.envelope.eta or 0) > now and e.token is None for e in live)
        return QueueStats(queue, len(live) - held - delayed, held, delayed, dead)

    def queues(self) -> list[str]:
        with self._lock:
            return sorted({e.envelope.queue for e in self._messages.values()})

    def purge(self, queue: str) -> int:
        with self._lock:
            doomed = [k for k, e in self._messages.items()
                      if e.envelope.queue == queue and e.token is None and e.dead_reason is None]
            for key in doomed:
                del self._messages[key]
        return len(doomed)

    def dead_letters(self, queue: str | None = None, limit: int = 100) -> list[DeadLetter]:
        with self._lock:
            dead = [e for e in self._messages.values() if e.dead_reason is not None
                    and queue in (None, e.envelope.queue)]
        dead.sort(key=lambda e: e.failed_at)
        return [DeadLetter(e.envelope, e.dead_reason or "", e.failed_at) for e in dead[:limit]]

    def replay_dead(self, ids: Sequence[str] | None = None, queue: str | None = None) -> int:
        with self._lock:
            chosen = [e for e in self._messages.values()
                      if e.dead_reason is not None and queue in (None, e.envelope.queue)
                      and (ids is None or e.envelope.id in ids)]
            for entry in chosen:
                entry.dead_reason, entry.seq, entry.deliveries = None, next(self._seq), 0
                entry.envelope = replace(entry.envelope, eta=None)
        self._bell.ring()
        return len(chosen)

    def purge_dead(self, queue: str | None = None) -> int:
        with self._lock:
            doomed = [k for k, e in self._messages.items() if e.dead_reason is not None
                      and queue in (None, e.envelope.queue)]
            for key in doomed:
                del self._messages[key]
        return len(doomed)

    # -- results --------------------------------------------------------------------------
    def store(self, task_id: str, record: StoredResult, ttl: float) -> bool:
        with self._lock:
            old = self._live_result(task_id)
            if old is not None and (old.final or old.attempt > record.attempt):
                return False
            self._results[task_id] = (record, self.clock.time() + ttl)
        if record.final:
            self._bell.ring()
        return True

    async def astore(self, task_id: str, record: StoredResult, ttl: float) -> bool:
        return self.store(task_id, record, ttl)

    def _live_result(self, task_id: str) -> StoredResult | None:
        found = self._results.get(task_id)
        if found is None:
            return None
        if found[1] <= self.clock.time():
            del self._results[task_id]
            return None
        return found[0]

    def get_many(self, task_ids: Sequence[str]) -> list[StoredResult | None]:
        with self._lock:
            return [self._live_result(t) for t in task_ids]

    async def aget_many(self, task_ids: Sequence[str]) -> list[StoredResult | None]:
        return self.get_many(task_ids)

    def wait(self, task_id: str, timeout: float | None) -> StoredResult | None:
        deadline = Deadline(timeout)
        while True:
            seen = self._bell.generation
            record = self.get(task_id)
            if (record is not None and record.final) or deadline.expired:
                return record
            self._bell.wait_sync(seen, deadline.left())

    async def await_final(self, task_id: str, timeout: float | None) -> StoredResult | None:
        deadline = Deadline(timeout)
        while True:
            record = await self.aget(task_id)
            if (record is not None and record.final) or deadline.expired:
                return record
            await self._bell.wait(deadline.left())

    def forget(self, task_id: str) -> None:
        with self._lock:
            self._results.pop(task_id, None)

    async def count_member(self, key: str, member: str, ttl: float) -> int:
        with self._lock:
            members = self._members.setdefault(key, set())
            members.add(member)
            return len(members)

    # -- events ---------------------------------------------------------------------------
    def append_events_sync(self, events: Sequence[Event], retention: Retention) -> None:
        horizon = self.clock.time() - retention.age
        with self._lock:
            for event in events:
                stored = dataclasses.replace(event, id=str(next(self._event_seq)))
                self._events.append(stored)
                if event.kind in WORKER_KINDS:
                    self._note_worker(stored)
            while self._events and (len(self._events) > retention.count
                                    or self._events[0].at < horizon):
                self._events.popleft()
        self._bell.ring()

    def _note_worker(self, event: Event) -> None:
        if event.kind == WORKER_OFFLINE:
            self._heartbeats.pop(event.process, None)
        else:
            self._heartbeats[event.process] = event

    async def append_events(self, events: Sequence[Event], retention: Retention) -> None:
        self.append_events_sync(events, retention)

    async def read_events(self, after: str | None, limit: int, wait: float) -> list[Event]:
        deadline = Deadline(wait)
        start = int(after) if after is not None else int(await self.last_event_id() or 0)
        while True:
            with self._lock:
                found = [e for e in self._events if int(e.id) > start][:limit]
            if found or deadline.expired:
                return found
            await self._bell.wait(deadline.left())

    async def last_event_id(self) -> str | None:
        with self._lock:
            return self._events[-1].id if self._events else None

    async def heartbeats(self) -> list[Event]:
        with self._lock:
            return list(self._heartbeats.values())

    # -- coordination ---------------------------------------------------------------------
    def _value(self, key: str) -> bytes | None:
        found = self._values.get(key)
        if found is not None and found[1] <= self.clock.time():
            del self._values[key]
            return None
        return None if found is None else found[0]

    def put_if_absent(self, key: str, value: bytes, ttl: float) -> bytes | None:
        with self._lock:
            held = self._value(key)
            if held is None:
                self._values[key] = (value, self.clock.time() + ttl)
            return held

    async def aput_if_absent(self, key: str, value: bytes, ttl: float) -> bytes | None:
        return self.put_if_absent(key, value, ttl)

    def get_value(self, key: str) -> bytes | None:
        with self._lock:
            return self._value(key)

    async def aget_value(self, key: str) -> bytes | None:
        return self.get_value(key)

    def value_ttl(self, key: str) -> float | None:
        with self._lock:
            if self._value(key) is None:
                return None
            return max(0.0, self._values[key][1] - self.clock.time())

    async def avalue_ttl(self, key: str) -> float | None:
        return self.value_ttl(key)

    def compare_and_set(self, key: str, expected: bytes | None, value: bytes | None,
                        ttl: float) -> bool:
        with self._lock:
            if self._value(key) != expected:
                return False
            if value is None:
                self._values.pop(key, None)
            else:
                self._values[key] = (value, self.clock.time() + ttl)
            return True

    async def acompare_and_set(self, key: str, expected: bytes | None, value: bytes | None,
                               ttl: float) -> bool:
        return self.compare_and_set(key, expected, value, ttl)

    def set_value(self, key: str, value: bytes, ttl: float) -> None:
        with self._lock:
            self._values[key] = (value, self.clock.time() + ttl)

    async def aset_value(self, key: str, value: bytes, ttl: float) -> None:
        self.set_value(key, value, ttl)

    def delete_value(self, key: str) -> None:
        with self._lock:
            self._values.pop(key, None)

    async def adelete_value(self, key: str) -> None:
        self.delete_value(key)

    # -- control: commands, revocations, rate limits, concurrency slots, early wake-up --------
    def append_control(self, entries: Sequence[Event], retention: Retention) -> list[str]:
        with self._lock:
            ids = self._control.append(entries, retention, self.clock.time())
        self._bell.ring()
        return ids

    async def aappend_control(self, entries: Sequence[Event],
                              retention: Retention) -> list[str]:
        return self.append_control(entries, retention)

    async def aread_control(self, after: str | None, limit: int, wait: float) -> list[Event]:
        deadline = Deadline(wait)
        start = int(after) if after is not None else int(await self.alast_control_id() or 0)
        while True:
            with self._lock:
                found = self._control.after(start, limit)
            if found or deadline.expired:
                return found
            await self._bell.wait(deadline.left())

    async def alast_control_id(self) -> str | None:
        with self._lock:
            return self._control.last_id()

    def revoke_ids(self, ids: Sequence[str], ttl: float) -> None:
        with self._lock:
            until = self.clock.time() + ttl
            self._revoked.update(dict.fromkeys(ids, until))

    async def arevoke_ids(self, ids: Sequence[str], ttl: float) -> None:
        self.revoke_ids(ids, ttl)

    async def arevoked_ids(self) -> list[str]:
        with self._lock:
            return mc.live_revoked(self._revoked, self.clock.time())

    async def acquire_rate(self, windows: Sequence[RateWindow], member: str) -> float:
        with self._lock:
            return mc.acquire_rate(self._rates, windows, member, self.clock.time())

    async def acquire_slot(self, key: str, limit: int, holder: str, lease: float,
                           waiter: Waiter, patience: float) -> tuple[bool, list[Waiter]]:
        with self._lock:
            line = self._slots.setdefault(key, mc.SlotLine())
            return line.acquire(limit, holder, lease, waiter, patience, self.clock.time())

    async def release_slot(self, key: str, limit: int, holder: str) -> list[Waiter]:
        with self._lock:
            line = self._slots.get(key)
            if line is None:
                return []
            woken = line.release(limit, holder, self.clock.time())
            if line.empty:
                del self._slots[key]
            return woken

    async def renew_slots(self, held: Sequence[tuple[str, str]], lease: float) -> set[str]:
        now, lost = self.clock.time(), set()
        with self._lock:
            for key, holder in held:
                line = self._slots.get(key)
                if line is None or line.holders.get(holder, 0.0) <= now:
                    lost.add(holder)
                else:
                    line.holders[holder] = now + lease
        return lost

    async def slot_woken(self, key: str, holder: str) -> bool:
        with self._lock:
            line = self._slots.get(key)
            if line is None:
                return False
            line.expire(self.clock.time())
            place = line.waiters.get(holder)
            return place is not None and place.woken

    async def wake_delayed(self, queue: str, ids: Sequence[str]) -> int:
        now, woken = self.clock.time(), 0
        with self._lock:
            for task_id in ids:
                entry = self._messages.get(task_id)
                if (entry is not None and entry.envelope.queue == queue and entry.token is None
                        and entry.dead_reason is None and (entry.envelope.eta or 0) > now):
                    entry.envelope = replace(entry.envelope, eta=None)
                    woken += 1
        if woken:
            self._bell.ring()
        return woken

    def scheduled(self, queue: str, limit: int = 100) -> list[Envelope]:
        now = self.clock.time()
        with self._lock:
            waiting = [e.envelope for e in self._messages.values()
                       if e.envelope.queue == queue and e.token is None and e.dead_reason is None
                       and (e.envelope.eta or 0) > now]
        return sorted(waiting, key=lambda env: env.eta or 0)[:limit]

    def close(self) -> None:
        self._bell.ring()


class _Bell:
    """Wakes every waiter, async (any loop) or blocking (any thread), on each ring."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self.generation = 0
        self._waiters: set[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = set()

    def ring(self) -> None:
        with self._cond:
            self.generation += 1
            self._cond.notify_all()
            waiters = list(self._waiters)
        for loop, event in waiters:
            if not loop.is_closed():
                loop.call_soon_threadsafe(event.set)

    def wait_sync(self, seen: int, timeout: float | None) -> None:
        with self._cond:
            self._cond.wait_for(lambda: self.generation != seen, timeout)

    async def wait(self, timeout: float | None) -> None:
        waiter = (asyncio.get_running_loop(), asyncio.Event())
        with self._cond:
            self._waiters.add(waiter)
        try:
            await asyncio.wait_for(waiter[1].wait(), timeout)
        except TimeoutError:
            pass
        finally:
            with self._cond:
                self._waiters.discard(waiter)
