"""Fixed intervals: ``every(timedelta(minutes=5))`` ticks at ``anchor + n * interval``."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

from ..errors import ConfigurationError
from .base import as_utc

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MINIMUM = timedelta(milliseconds=100)
_MICROSECOND = timedelta(microseconds=1)


class IntervalSchedule:
    """Ticks at ``anchor + n * interval`` for every integer n >= 0.

    The ticks are fixed instants: daylight-saving changes do not move them. With the default
    anchor (the Unix epoch) every process computes the same ticks without sharing any state,
    so a tick can be named by its instant. Arithmetic is exact to the microsecond.
    """

    __slots__ = ("anchor", "interval")

    def __init__(self, interval: timedelta | float, *, anchor: datetime | None = None) -> None:
        self.interval = _as_interval(interval)
        self.anchor = EPOCH if anchor is None else as_utc(anchor, "anchor")

    def next_run(self, after: datetime) -> datetime:
        """The first tick strictly after ``after``; the anchor itself if ``after`` precedes it."""
        elapsed = as_utc(after, "after") - self.anchor
        # timedelta // timedelta floors on whole microseconds: exact, with no float drift
        count = max(elapsed // self.interval + 1, 0)
        return self.anchor + count * self.interval

    def last_run(self, at: datetime) -> datetime | None:
        """The latest tick at or before ``at``; None before the anchor."""
        count = (as_utc(at, "at") - self.anchor) // self.interval
        return None if count < 0 else self.anchor + count * self.interval

    def describe(self) -> str:
        """``every 5m``; ``every 1d from 2024-01-01T07:00:00+00:00`` with an anchor."""
        text = f"every {span(self.interval)}"
        return text if self.anchor == EPOCH else f"{text} from {self.anchor.isoformat()}"

    def key(self) -> str:
        """``every:300s:1970-01-01T00:00:00+00:00``: equal for equal interval and anchor."""
        return f"every:{_seconds(self.interval // _MICROSECOND)}s:{self.anchor.isoformat()}"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, IntervalSchedule) and self.key() == other.key()

    def __hash__(self) -> int:
        return hash(self.key())

    def __repr__(self) -> str:
        return f"<IntervalSchedule {self.describe()}>"


def every(interval: timedelta | float, *, anchor: datetime | None = None) -> IntervalSchedule:
    """A schedule ticking every ``interval`` (a timedelta, or seconds), at least 0.1 s.

    Ticks fall at ``anchor + n * interval``; ``anchor`` (aware) defaults to the Unix epoch, so
    ``every(timedelta(hours=1))`` ticks on the hour in UTC and ``every(timedelta(days=1),
    anchor=datetime(2024, 1, 1, 7, tzinfo=UTC))`` at 07:00 UTC each day.
    """
    return IntervalSchedule(interval, anchor=anchor)


def _as_interval(interval: timedelta | float) -> timedelta:
    if isinstance(interval, bool) or not isinstance(interval, timedelta | int | float):
        raise ConfigurationError(
            f"interval must be a timedelta or seconds, not {type(interval).__name__}")
    if not isinstance(interval, timedelta):
        if not math.isfinite(interval):
            raise ConfigurationError(f"interval must be a finite number of seconds: {interval}")
        try:
            interval = timedelta(seconds=interval)
        except OverflowError as exc:
            raise ConfigurationError(f"interval is too long: {interval} s") from exc
    if interval <= timedelta(0):
        raise ConfigurationError(f"interval must be positive, got {interval.total_seconds()} s")
    if interval < MINIMUM:
        raise ConfigurationError(
            f"interval must be at least 0.1 s, got {interval.total_seconds()} s")
    return interval


def span(delta: timedelta) -> str:
    """A compact duration: ``5m``, ``1h30m``, ``1d``, ``0.5s``, ``1m1.25s``."""
    rest = delta // _MICROSECOND
    parts = []
    for unit, size in (("d", 86_400_000_000), ("h", 3_600_000_000), ("m", 60_000_000)):
        count, rest = divmod(rest, size)
        if count:
            parts.append(f"{count}{unit}")
    if rest:
        parts.append(f"{_seconds(rest)}s")
    return "".join(parts)


def _seconds(microseconds: int) -> str:
    """Microseconds as exact decimal seconds: ``300``, ``0.5``, ``1.000001``."""
    whole, fraction = divmod(microseconds, 1_000_000)
    return str(whole) if not fraction else f"{whole}.{fraction:06d}".rstrip("0")
