"""The in-process store's control structures: the command stream, the revocation set, rate
windows and concurrency-key slots. Plain data and the reference algorithms of the
:class:`~conveyor.brokers.base.RateLimiter` and :class:`~conveyor.brokers.base.ConcurrencySlots`
contracts (SQLite and Redis implement the same steps in SQL and Lua). Not thread-safe: the
memory store calls them under its lock.
"""

from __future__ import annotations

import collections
import dataclasses
import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field

from ..events import Event, Retention
from .base import RateWindow, Waiter

#: A member back this little before its turn counts as on time (float rounding of delays).
EPSILON = 0.001
#: The least wait reported when a window is full (its oldest start may be a hair from leaving).
LEAST_WAIT = 1e-6


class ControlStream:
    """Entries with increasing integer ids, trimmed by count and age."""

    def __init__(self) -> None:
        self.entries: collections.deque[Event] = collections.deque()
        self._seq = itertools.count(1)

    def append(self, entries: Sequence[Event], retention: Retention, now: float) -> list[str]:
        ids = []
        for entry in entries:
            stored = dataclasses.replace(entry, id=str(next(self._seq)))
            self.entries.append(stored)
            ids.append(stored.id)
        while self.entries and (len(self.entries) > retention.count
                                or self.entries[0].at < now - retention.age):
            self.entries.popleft()
        return ids

    def after(self, after: int, limit: int) -> list[Event]:
        return [e for e in self.entries if int(e.id) > after][:limit]

    def last_id(self) -> str | None:
        return self.entries[-1].id if self.entries else None


def live_revoked(revoked: dict[str, float], now: float) -> list[str]:
    """The ids whose revocation has not expired (expired ones are dropped)."""
    for task_id in [k for k, until in revoked.items() if until <= now]:
        del revoked[task_id]
    return list(revoked)


@dataclass(slots=True)
class RateState:
    """One window's recent starts (times) and the turns handed to waiting members."""

    starts: list[float] = field(default_factory=list)
    turns: dict[str, float] = field(default_factory=dict)

    def trim(self, horizon: float) -> None:
        self.starts = [t for t in self.starts if t > horizon]
        self.turns = {m: t for m, t in self.turns.items() if t > horizon}


def acquire_rate(states: dict[str, RateState], windows: Sequence[RateWindow], member: str,
                 now: float) -> float:
    """The reference algorithm of :meth:`RateLimiter.acquire_rate`."""
    waits = []
    for window in windows:
        state = states.setdefault(window.key, RateState())
        state.trim(now - window.per)
        waits.append(rate_wait(state, window, member, now))
    longest = max(waits, default=0.0)
    for window in windows:
        state = states[window.key]
        if longest <= 0:
            state.starts.append(now)
            state.turns.pop(member, None)
        else:  # one turn in every window, when the member will really be back
            state.turns[member] = now + longest
    return longest


def rate_wait(state: RateState, window: RateWindow, member: str, now: float) -> float:
    """Seconds ``member`` must wait in one (trimmed) window; 0.0 if it may start now."""
    mine = state.turns.get(member)
    if mine is not None and mine > now + EPSILON:
        return mine - now  # back early: keep the turn
    if mine is not None:  # its turn has come: only the starts count now
        if len(state.starts) < window.limit:
            return 0.0
        return max(min(state.starts) + window.per - now, LEAST_WAIT)
    taken = sorted([*state.starts, *state.turns.values()])
    if len(taken) < window.limit:
        return 0.0
    return max(taken[-window.limit] + window.per - now, LEAST_WAIT)


@dataclass(slots=True)
class _Place:
    waiter: Waiter
    until: float
    patience: float
    woken: bool = False


@dataclass(slots=True)
class SlotLine:
    """One key's holders (holder -> lease expiry) and its line of waiters, in arrival order."""

    holders: dict[str, float] = field(default_factory=dict)
    waiters: dict[str, _Place] = field(default_factory=dict)

    def expire(self, now: float) -> None:
        self.holders = {h: until for h, until in self.holders.items() if until > now}
        self.waiters = {h: p for h, p in self.waiters.items() if p.until > now}

    @property
    def empty(self) -> bool:
        return not self.holders and not self.waiters

    def acquire(self, limit: int, holder: str, lease: float, waiter: Waiter, patience: float,
                now: float) -> tuple[bool, list[Waiter]]:
        """The reference algorithm of :meth:`ConcurrencySlots.acquire_slot` (expired first)."""
        self.expire(now)
        free = limit - len(self.holders)
        line = list(self.waiters)
        place = line.index(holder) if holder in self.waiters else None
        granted = holder in self.holders or (
            free > 0 and (place < free if place is not None else len(line) < free))
        if granted:
            self.holders[holder] = now + lease
            self.waiters.pop(holder, None)
        else:  # a dict keeps an updated key where it was: the waiter keeps its place in line
            self.waiters[holder] = _Place(waiter, now + patience, patience)
        return granted, self.wake(limit, now)

    def release(self, limit: int, holder: str, now: float) -> list[Waiter]:
        self.expire(now)
        self.holders.pop(holder, None)
        self.waiters.pop(holder, None)
        return self.wake(limit, now)

    def wake(self, limit: int, now: float) -> list[Waiter]:
        """Mark the first waiters, as many as there are free slots, woken (once each); a woken
        waiter's place lasts its patience again from now."""
        free = max(limit - len(self.holders), 0)
        woken = []
        for place in list(self.waiters.values())[:free]:
            if not place.woken:
                place.woken, place.until = True, now + place.patience
                woken.append(place.waiter)
        return woken
