"""Which ticks of an entry are due: a pure function of the schedule, the tick the entry last
sent (or skipped), the time now and the entry's catch-up policy. The beat calls it; table tests
call it with made-up times.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from .base import Schedule, as_utc
from .entries import MAX_CATCH_UP, CatchUp

_MICROSECOND = timedelta(microseconds=1)


@dataclass(frozen=True, slots=True)
class Due:
    """The ticks to send now, oldest first, and the tick the entry has reached once they are
    sent (a skipped tick is reached without being sent)."""

    send: tuple[datetime, ...]
    reached: datetime


def baseline(schedule: Schedule, now: datetime) -> datetime:
    """Where a new entry (or one whose schedule changed) starts: its latest tick so far, which
    is not sent; the first tick sent is the next one."""
    return schedule.last_run(now) or as_utc(now, "now")


def due(schedule: Schedule, last: datetime, now: datetime, catch_up: CatchUp,
        resumed: bool) -> Due:
    """The ticks after ``last`` and at or before ``now`` to send.

    A beat that kept the lead since ``last`` was reached sends every such tick (normally one:
    it wakes at each tick). A beat that has just ``resumed`` (it took the lead, after a restart
    or from a beat that died) applies ``catch_up`` to them: ``once`` sends the latest,
    ``skip`` none, ``all`` each of them. At most :data:`MAX_CATCH_UP`, the latest ones.
    """
    latest = schedule.last_run(now)
    if latest is None or latest <= last:
        return Due((), last)
    if resumed and catch_up == "skip":
        return Due((), latest)
    if resumed and catch_up == "once":
        return Due((latest,), latest)
    ticks = [latest]
    while len(ticks) < MAX_CATCH_UP:
        earlier = schedule.last_run(ticks[-1] - _MICROSECOND)
        if earlier is None or earlier <= last:
            break
        ticks.append(earlier)
    return Due(tuple(reversed(ticks)), latest)
