"""Time zones, and which instants a local wall-clock time names across daylight-saving changes.

In a zone with daylight saving, a local time (a naive datetime read as the zone's wall clock)
names one instant, none or two:

- none when it falls in the gap of a spring-forward change (02:30 on a night the clocks jump
  from 02:00 to 03:00); the first instant after the gap is where the clocks land (03:00 local);
- two when it falls in the hour repeated by a fall-back change (01:30 on a night the clocks go
  back from 02:00 to 01:00); the first of them is the one with ``fold=0`` (PEP 495).

Cron schedules turn matches on the wall clock into ticks with these functions; the rules
they apply are in :mod:`conveyor.schedule.cron`.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from ..errors import ConfigurationError


def resolve_zone(tz: str | tzinfo | None) -> tzinfo:
    """The tzinfo for an IANA name (``"Europe/Berlin"``) or a tzinfo; None is UTC."""
    if tz is None:
        return UTC
    if isinstance(tz, str):
        try:
            return ZoneInfo(tz)
        # zoneinfo answers a bad key with KeyError, ValueError or, for a folder, an OSError
        except (ZoneInfoNotFoundError, ValueError, OSError) as exc:
            raise ConfigurationError(
                f"unknown time zone {tz!r}: use an IANA name such as 'Europe/Berlin'") from exc
    if not isinstance(tz, tzinfo):
        raise ConfigurationError(f"tz must be an IANA name or a tzinfo, not {type(tz).__name__}")
    if hasattr(tz, "localize"):
        # pytz zones ignore ``fold`` and give a wall time its zone's first offset (LMT) unless
        # localized, so every rule here would resolve wall times wrongly with them.
        raise ConfigurationError(f"pytz time zones are not supported: pass the name {str(tz)!r}")
    return tz


def zone_name(tz: tzinfo) -> str:
    """The zone's IANA key (``Europe/Moscow``), else its fixed name (``UTC``, ``UTC+03:00``)."""
    key = getattr(tz, "key", None)
    if isinstance(key, str):
        return key
    return tz.tzname(None) or repr(tz)


def _offsets(wall: datetime, tz: tzinfo) -> tuple[timedelta, timedelta]:
    """The UTC offsets of ``wall`` with fold=0 and fold=1; they differ only in gaps and folds."""
    first = wall.replace(tzinfo=tz, fold=0).utcoffset()
    second = wall.replace(tzinfo=tz, fold=1).utcoffset()
    if first is None or second is None:
        raise ConfigurationError(f"time zone {zone_name(tz)} gives no UTC offset for {wall}")
    return first, second


def _instant(wall: datetime, offset: timedelta) -> datetime:
    return (wall - offset).replace(tzinfo=UTC)


def instants(wall: datetime, tz: tzinfo) -> tuple[datetime, ...]:
    """The UTC instants at which the clock in ``tz`` shows the naive ``wall``, in order:
    one, none (a spring-forward gap) or two (the hour repeated after falling back)."""
    before, after = _offsets(wall, tz)
    if before == after:
        return (_instant(wall, before),)
    if before > after:  # PEP 495: in a fold, fold=0 takes the earlier, pre-change offset
        return (_instant(wall, before), _instant(wall, after))
    return ()


def fold_size(wall: datetime, tz: tzinfo) -> timedelta:
    """How far the clock went back if ``wall`` is shown twice (one hour, usually), else zero."""
    before, after = _offsets(wall, tz)
    return max(before - after, timedelta(0))


def gap_end(wall: datetime, tz: tzinfo) -> datetime:
    """The first instant after the spring-forward gap that contains the naive ``wall``.

    Only meaningful when ``instants(wall, tz)`` is empty.
    """
    before, after = _offsets(wall, tz)
    # The change lies between the instant read with the new offset (still in old time) and
    # the one read with the old offset (already in new time). zoneinfo keeps its transitions
    # private, but they fall on whole seconds, so bisect over seconds.
    low = math.floor(_instant(wall, after).timestamp())
    high = math.ceil(_instant(wall, before).timestamp())
    while high - low > 1:
        middle = (low + high) // 2
        if datetime.fromtimestamp(middle, tz).utcoffset() == after:
            high = middle
        else:
            low = middle
    return datetime.fromtimestamp(high, UTC)


def first_instant(wall: datetime, tz: tzinfo) -> datetime:
    """The earliest instant showing ``wall``, or the end of the gap it falls in.

    Never decreases as ``wall`` grows, which is what lets a search over wall times stop.
    """
    found = instants(wall, tz)
    return found[0] if found else gap_end(wall, tz)


def last_instant(wall: datetime, tz: tzinfo) -> datetime:
    """The latest instant showing ``wall``, or the end of the gap it falls in; never
    decreases as ``wall`` grows."""
    found = instants(wall, tz)
    return found[-1] if found else gap_end(wall, tz)


def wall_clock(moment: datetime, tz: tzinfo) -> tuple[datetime, bool]:
    """The naive local time ``moment`` shows in ``tz``, and whether it is the second showing
    of that time (the repeated hour after falling back)."""
    local = moment.astimezone(tz)
    wall = local.replace(tzinfo=None, fold=0)
    return wall, local.fold == 1 and fold_size(wall, tz) > timedelta(0)
