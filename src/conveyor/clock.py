"""Time as a parameter: the one place Conveyor reads the clock.

Stores, the execution path, the worker and the beat take a :class:`Clock` (default
:data:`SYSTEM`), so leases, ETAs, expiry and schedules can be tested with a :class:`FakeClock`
that moves only when the test says so, instead of with sleeps and wide timing windows.

``time()`` is wall-clock epoch seconds: what ETAs, expiry and stored timestamps are written in,
comparable across machines. ``monotonic()`` never goes back: what durations and timeouts within
one process are measured with.
"""

from __future__ import annotations

import threading
import time as _time
from typing import Protocol


class Clock(Protocol):
    """Where the time comes from."""

    def time(self) -> float:
        """Wall-clock time in epoch seconds."""
        ...

    def monotonic(self) -> float:
        """Seconds on a clock that never goes back (only differences mean anything)."""
        ...


class SystemClock:
    """The real clock."""

    def time(self) -> float:
        return _time.time()

    def monotonic(self) -> float:
        return _time.monotonic()

    def __repr__(self) -> str:
        return "SystemClock()"


#: The default clock of every component.
SYSTEM: Clock = SystemClock()


class FakeClock:
    """A clock for tests: it starts at ``start`` (epoch seconds) and moves only by
    :meth:`advance` or :meth:`set`. Thread-safe, so a store's threads may read it."""

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self._now = start
        self._mono = 0.0
        self._lock = threading.Lock()

    def time(self) -> float:
        with self._lock:
            return self._now

    def monotonic(self) -> float:
        with self._lock:
            return self._mono

    def advance(self, seconds: float) -> None:
        """Move both clocks forward by ``seconds`` (never backwards)."""
        if seconds < 0:
            raise ValueError("a clock does not go back; advance by a positive amount")
        with self._lock:
            self._now += seconds
            self._mono += seconds

    def set(self, epoch: float) -> None:
        """Jump the wall clock to ``epoch`` (as NTP may); the monotonic clock moves forward by
        the jump when it is forward, and stays when it is backward."""
        with self._lock:
            self._mono += max(0.0, epoch - self._now)
            self._now = epoch

    def __repr__(self) -> str:
        return f"FakeClock({self._now!r})"


class Deadline:
    """A budget of real seconds for a blocking wait (``get(timeout=...)``, a result waiter).

    Timeouts are about how long a caller actually waits, so they always run on the system's
    monotonic clock, even where a component was given a fake clock for its notion of "now".
    ``None`` means no deadline.
    """

    __slots__ = ("_at",)

    def __init__(self, timeout: float | None) -> None:
        self._at = None if timeout is None else _time.monotonic() + timeout

    def left(self) -> float | None:
        """Seconds left (at least 0.0), or None for no deadline."""
        return None if self._at is None else max(0.0, self._at - _time.monotonic())

    def pause(self, cap: float) -> float:
        """How long to sleep before looking again: ``cap``, but never past the deadline."""
        left = self.left()
        return cap if left is None else min(cap, left)

    @property
    def expired(self) -> bool:
        return self._at is not None and _time.monotonic() >= self._at
