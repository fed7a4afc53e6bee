"""Cron schedules: ``cron("0 7 * * *", tz="Europe/Moscow")`` and Celery's ``crontab(...)``.

An expression matches local wall-clock times in the schedule's zone. croniter parses it and
walks its matches on fake-UTC datetimes, where no daylight saving exists; this module turns
each match into ticks with zoneinfo rather than relying on croniter's own DST handling.
The rules (those of Vixie cron, the cron of most Linux systems, for the common cases):

1. An entry for given hours (the hour field is not ``*``; daily, weekly, monthly entries)
   fires once for each matching local time:

   - a time that does not exist, skipped by a spring-forward change, runs once at the first
     instant after the gap: ``30 2 * * *`` runs at 03:00 on the night 02:00 jumps to 03:00.
     Several skipped matches (``*/15 2 * * *``) run once between them, at 03:00;
   - a time that occurs twice, repeated by a fall-back change, runs at its first occurrence:
     ``30 1 * * *`` runs at the first 01:30 on the night 02:00 goes back to 01:00.

2. An entry for every hour (the hour field is ``*``: hourly, every 15 minutes, every minute)
   follows the clock as it reads, so it keeps its real spacing through a change: a skipped
   time is not run (``*/15 * * * *`` goes from 01:45 to 03:00, fifteen real minutes), and a
   repeated time runs on both passes (01:15 before the clocks go back, and 01:15 again one
   real hour later).

Either way ticks are strictly increasing instants: no instant is a tick twice.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, tzinfo

from croniter import CroniterBadDateError, CroniterError, croniter

from ..errors import ConfigurationError
from .base import as_utc
from .fields import CrontabField, crontab_field, normalize
from .zones import (
    first_instant,
    fold_size,
    gap_end,
    instants,
    last_instant,
    resolve_zone,
    wall_clock,
    zone_name,
)

_HOUR, _DAY, _WEEKDAY = 1, 2, 4
# Any fixed instant will do: used once, to prove that an expression matches some date
_REFERENCE = datetime(2000, 1, 1, tzinfo=UTC)
_SECOND = timedelta(seconds=1)


class CronSchedule:
    """Ticks at the local times a five-field cron expression matches, in zone ``tz``.

    ``tz`` is an IANA name or a tzinfo (default UTC). Daylight-saving changes follow the rules
    in this module's docstring. With ``day_or`` (standard cron), an expression restricting
    both the day of month and the day of week matches days that satisfy either; without it
    (Celery's crontab), days that satisfy both. Invalid expressions, expressions that match
    no date and unknown zones raise ConfigurationError naming the bad part.
    """

    __slots__ = ("day_or", "expression", "follows_clock", "tz")

    def __init__(self, expression: str, tz: str | tzinfo | None = None, *,
                 day_or: bool = True) -> None:
        self.expression = normalize(expression)
        self.tz = resolve_zone(tz)
        expanded = _expand(self.expression, day_or)
        # day_or only matters when both day fields are restricted; folding it away otherwise
        # makes crontab(minute=0, hour=7) and cron("0 7 * * *") one definition
        self.day_or = day_or or expanded[_DAY] == ["*"] or expanded[_WEEKDAY] == ["*"]
        self.follows_clock = expanded[_HOUR] == ["*"]

    def next_run(self, after: datetime) -> datetime:
        """The first tick strictly after ``after``, as an aware UTC datetime."""
        moment = as_utc(after, "after")
        wall, second_pass = wall_clock(moment, self.tz)
        if not second_pass:  # ticks of a coming second pass show earlier times than ``wall``
            wall -= fold_size(wall, self.tz)
        best: datetime | None = None
        for match in self._matches(wall, forward=True):
            if best is not None and first_instant(match, self.tz) >= best:
                break  # a later match never resolves to an earlier instant
            for tick in self._ticks(match):
                if tick > moment and (best is None or tick < best):
                    best = tick
        if best is None:
            raise ConfigurationError(f"{self.describe()} has no tick after {after.isoformat()}")
        return best

    def last_run(self, at: datetime) -> datetime | None:
        """The latest tick at or before ``at`` (aware UTC), or None if there is none."""
        moment = as_utc(at, "at")
        wall, second_pass = wall_clock(moment, self.tz)
        if second_pass:  # the first pass of later-looking times came before ``at``
            wall += fold_size(wall, self.tz)
        best: datetime | None = None
        for match in self._matches(wall + _SECOND, forward=False):  # + 1 s: ``wall`` included
            if best is not None and last_instant(match, self.tz) <= best:
                break  # an earlier match never resolves to a later instant
            for tick in self._ticks(match):
                if tick <= moment and (best is None or tick > best):
                    best = tick
        return best

    def describe(self) -> str:
        """``cron 0 7 * * * (Europe/Moscow)``."""
        both = "" if self.day_or else ", day of month and day of week both"
        return f"cron {self.expression} ({zone_name(self.tz)}{both})"

    def key(self) -> str:
        """``cron:0 7 * * *:Europe/Moscow``: equal for equal expression, zone and day rule."""
        return f"cron:{self.expression}:{zone_name(self.tz)}{'' if self.day_or else ':and'}"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, CronSchedule) and self.key() == other.key()

    def __hash__(self) -> int:
        return hash(self.key())

    def __repr__(self) -> str:
        return f"<CronSchedule {self.describe()}>"

    def _matches(self, start: datetime, forward: bool) -> Iterator[datetime]:
        """Naive wall times matching the expression, strictly after (or before) ``start``."""
        walker = croniter(self.expression, start.replace(tzinfo=UTC), day_or=self.day_or)
        step = walker.get_next if forward else walker.get_prev
        while True:
            try:
                found: datetime = step(datetime)
            except (CroniterError, OverflowError):  # none in croniter's window, or past year 1
                return
            yield found.replace(tzinfo=None)

    def _ticks(self, match: datetime) -> tuple[datetime, ...]:
        """The instants a matching wall time fires at, by the rules in the module docstring."""
        found = instants(match, self.tz)
        if self.follows_clock:
            return found  # shown 0, 1 or 2 times by the clock: fire each time
        return found[:1] or (gap_end(match, self.tz),)


def cron(expression: str, tz: str | tzinfo | None = None) -> CronSchedule:
    """A schedule from a five-field cron expression: ``cron("0 7 * * *", tz="Europe/Moscow")``.

    Fields are minute, hour, day of month, month, day of week, with lists, ranges, steps,
    names (``mon-fri``, ``jan``), ``L`` (last day of month) and ``5#2`` (second Friday);
    ``@hourly``, ``@daily``, ``@weekly``, ``@monthly`` and ``@yearly`` are accepted too.
    ``tz`` is an IANA name or a tzinfo; the default is UTC.
    """
    return CronSchedule(expression, tz)


def crontab(minute: CrontabField = "*", hour: CrontabField = "*",
            day_of_week: CrontabField = "*", day_of_month: CrontabField = "*",
            month_of_year: CrontabField = "*", *, tz: str | tzinfo | None = None) -> CronSchedule:
    """Celery's ``crontab``: its field names, values and meaning, as a cron schedule.

    Each field takes an int, a cron-style string (``"*/15"``, ``"1-5"``, ``"mon-fri"``,
    ``"sunday"``) or an iterable of them (``{0, 30}``): ``crontab(minute=0, hour=7)`` is
    ``cron("0 7 * * *")``. As in Celery, and unlike cron, a day of month and a day of week
    given together must both match: ``day_of_month="1-7", day_of_week="mon"`` is the first
    Monday of each month.
    """
    values = (minute, hour, day_of_month, month_of_year, day_of_week)  # cron's field order
    fields = [crontab_field(index, value) for index, value in enumerate(values)]
    return CronSchedule(" ".join(fields), tz, day_or=False)


def _expand(expression: str, day_or: bool) -> list[list[int | str]]:
    """croniter's expanded fields; refuses field combinations and expressions matching no date."""
    try:
        walker = croniter(expression, _REFERENCE, day_or=day_or)
        walker.get_next(datetime)
    except CroniterBadDateError as exc:
        raise ConfigurationError(
            f"cron expression {expression!r} matches no date (such as 30 February)") from exc
    except (CroniterError, ValueError) as exc:
        raise ConfigurationError(f"invalid cron expression {expression!r}: {exc}") from exc
    expanded: list[list[int | str]] = walker.expanded
    return expanded
