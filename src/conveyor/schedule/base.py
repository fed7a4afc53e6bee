"""The contract every schedule meets, and the one rule on the datetimes it is given."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Protocol, runtime_checkable

from ..errors import ConfigurationError


@runtime_checkable
class Schedule(Protocol):
    """When a periodic task is due: a pure function of the datetimes passed in.

    A schedule is a set of instants ("ticks"). It reads no clock and keeps no state, so every
    beat process on every machine computes the same ticks from the same definition.
    Arguments are aware datetimes in any time zone (a naive one raises ``ConfigurationError``);
    results are aware datetimes in UTC.
    """

    def next_run(self, after: datetime) -> datetime:
        """The first tick strictly after ``after``.

        Successive calls ``next_run(next_run(t))`` are strictly increasing and never return
        the same instant twice.
        """
        ...

    def last_run(self, at: datetime) -> datetime | None:
        """The latest tick at or before ``at``, or None if there is none.

        ``last_run(next_run(t)) == next_run(t)``. A beat compares it with the tick it last
        sent to find one missed while it was down.
        """
        ...

    def describe(self) -> str:
        """A short text for people: ``every 5m``, ``cron 0 7 * * * (Europe/Moscow)``."""
        ...

    def key(self) -> str:
        """A stable text naming the definition: equal for equal schedules, across processes
        and restarts, so a beat can tell that an entry's schedule was changed."""
        ...


def as_utc(moment: datetime, name: str) -> datetime:
    """``moment`` in UTC; a naive datetime is refused, since its instant is unknown."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ConfigurationError(
            f"naive datetime given as {name!r} ({moment.isoformat()}): "
            "use an aware datetime, e.g. datetime.now(UTC)")
    return moment.astimezone(UTC)
