"""Schedules are pure functions of time: tables of (schedule, instant, expected tick)."""

from __future__ import annotations

import random
import re
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from conveyor.errors import ConfigurationError
from conveyor.schedule import CronSchedule, IntervalSchedule, Schedule, cron, crontab, every

MOSCOW = ZoneInfo("Europe/Moscow")
BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


def local(zone: ZoneInfo, *args: int, fold: int = 0) -> datetime:
    return datetime(*args, tzinfo=zone, fold=fold)  # type: ignore[misc]


# New York 2024: clocks jump 02:00 EST -> 03:00 EDT on 10 March at 07:00 UTC, and go back
# 02:00 EDT -> 01:00 EST on 3 November at 06:00 UTC.
# Berlin 2024: 02:00 CET -> 03:00 CEST on 31 March at 01:00 UTC, and 03:00 CEST -> 02:00 CET
# on 27 October at 01:00 UTC.
NEXT_RUN: list[tuple[str, Schedule, datetime, datetime]] = [
    # a daily report at 07:00 Moscow time (UTC+3 all year)
    ("report before 07:00", crontab(minute=0, hour=7, tz="Europe/Moscow"),
     local(MOSCOW, 2024, 5, 1, 6, 59), utc(2024, 5, 1, 4)),
    ("report at 07:00 is the next day's", crontab(minute=0, hour=7, tz="Europe/Moscow"),
     local(MOSCOW, 2024, 5, 1, 7), utc(2024, 5, 2, 4)),
    ("report as a cron expression", cron("0 7 * * *", tz="Europe/Moscow"),
     utc(2024, 12, 31, 4, 30), utc(2025, 1, 1, 4)),
    ("report, after given in Tokyo", cron("0 7 * * *", tz="Europe/Moscow"),
     datetime(2024, 5, 1, 9, 59, tzinfo=ZoneInfo("Asia/Tokyo")), utc(2024, 5, 1, 4)),
    # hourly clean-up
    ("hourly", cron("0 * * * *"), utc(2024, 5, 1, 10), utc(2024, 5, 1, 11)),
    ("hourly, a microsecond before", cron("@hourly"),
     utc(2024, 5, 1, 10, 59, 59, 999999), utc(2024, 5, 1, 11)),
    ("hourly crontab", crontab(minute=0), utc(2024, 12, 31, 23, 30), utc(2025, 1, 1)),
    # every 5 minutes, anchored at the epoch
    ("every 5m", every(timedelta(minutes=5)), utc(2024, 5, 1, 10, 2, 30), utc(2024, 5, 1, 10, 5)),
    ("every 5m on a tick", every(300), utc(2024, 5, 1, 10, 5), utc(2024, 5, 1, 10, 10)),
    ("every 90s", every(90.0), utc(1970, 1, 1, 0, 1), utc(1970, 1, 1, 0, 1, 30)),
    ("every 0.1s", every(0.1), utc(2024, 5, 1, 0, 0, 0, 50000),
     utc(2024, 5, 1, 0, 0, 0, 100000)),
    ("every day at the anchor", every(timedelta(days=1), anchor=utc(2024, 1, 1, 7)),
     utc(2024, 3, 5, 8), utc(2024, 3, 6, 7)),
    ("before the anchor: the anchor", every(timedelta(days=1), anchor=utc(2024, 1, 1, 7)),
     utc(2023, 12, 1), utc(2024, 1, 1, 7)),
    ("interval ignores DST", every(timedelta(hours=1)), local(NEW_YORK, 2024, 11, 3, 1, 30),
     utc(2024, 11, 3, 6)),
    # weekday-only entries
    ("weekdays, Friday to Monday", crontab(minute=30, hour=9, day_of_week="mon-fri"),
     utc(2024, 5, 3, 10), utc(2024, 5, 6, 9, 30)),
    ("weekdays as numbers", cron("30 9 * * 1-5"), utc(2024, 5, 4, 12), utc(2024, 5, 6, 9, 30)),
    ("Sundays by Celery's name", crontab(0, 0, day_of_week="sunday"), utc(2024, 5, 1),
     utc(2024, 5, 5)),
    ("Sunday is 0 and 7", cron("0 0 * * 7"), utc(2024, 5, 1), utc(2024, 5, 5)),
    # month ends and 29 February
    ("last day of a leap February", cron("0 0 L * *"), utc(2024, 2, 1), utc(2024, 2, 29)),
    ("last day of February", cron("0 0 L * *"), utc(2023, 2, 1), utc(2023, 2, 28)),
    ("last day after a 30-day month", cron("0 0 L * *"), utc(2024, 4, 30), utc(2024, 5, 31)),
    ("the 31st skips short months", cron("0 0 31 * *"), utc(2024, 4, 1), utc(2024, 5, 31)),
    ("29 February: next leap year", cron("0 12 29 2 *"), utc(2024, 3, 1), utc(2028, 2, 29, 12)),
    ("29 February: 2100 is no leap year", crontab(0, 12, day_of_month=29, month_of_year=2),
     utc(2096, 3, 1), utc(2104, 2, 29, 12)),
    # both day fields: cron matches either, Celery's crontab both
    ("cron: 1st-7th or a Monday", cron("0 0 1-7 * mon"), utc(2024, 1, 8), utc(2024, 1, 15)),
    ("crontab: the first Monday", crontab(0, 0, day_of_month="1-7", day_of_week="mon"),
     utc(2024, 1, 8), utc(2024, 2, 5)),
    # New York, spring forward: 02:00-02:59 local does not exist on 10 March
    ("NY 02:30 skipped: runs at 03:00", cron("30 2 * * *", tz=NEW_YORK),
     local(NEW_YORK, 2024, 3, 10), utc(2024, 3, 10, 7)),
    ("NY the next day at 02:30 again", cron("30 2 * * *", tz=NEW_YORK),
     utc(2024, 3, 10, 7), local(NEW_YORK, 2024, 3, 11, 2, 30)),
    ("NY skipped 02:00-02:45 run once", cron("*/15 2 * * *", tz=NEW_YORK),
     utc(2024, 3, 10, 6, 59), utc(2024, 3, 10, 7)),
    ("NY after the gap's one run", cron("*/15 2 * * *", tz=NEW_YORK),
     utc(2024, 3, 10, 7), local(NEW_YORK, 2024, 3, 11, 2)),
    ("NY every 15m: 01:45 to 03:00", cron("*/15 * * * *", tz=NEW_YORK),
     local(NEW_YORK, 2024, 3, 10, 1, 45), utc(2024, 3, 10, 7)),
    ("NY hourly: 01:00 to 03:00", cron("0 * * * *", tz=NEW_YORK),
     local(NEW_YORK, 2024, 3, 10, 1), utc(2024, 3, 10, 7)),
    ("NY hourly at :30: one real hour", cron("30 * * * *", tz=NEW_YORK),
     local(NEW_YORK, 2024, 3, 10, 1, 30), utc(2024, 3, 10, 7, 30)),
    ("NY 07:00 that morning", cron("0 7 * * *", tz=NEW_YORK), local(NEW_YORK, 2024, 3, 9, 12),
     utc(2024, 3, 10, 11)),
    # New York, fall back: 01:00-01:59 local happens twice on 3 November
    ("NY 01:30 twice: the first", cron("30 1 * * *", tz=NEW_YORK), local(NEW_YORK, 2024, 11, 3),
     utc(2024, 11, 3, 5, 30)),
    ("NY 01:30 twice: not the second", cron("30 1 * * *", tz=NEW_YORK), utc(2024, 11, 3, 5, 30),
     local(NEW_YORK, 2024, 11, 4, 1, 30)),
    ("NY fixed hour: first pass only", cron("*/15 1 * * *", tz=NEW_YORK),
     utc(2024, 11, 3, 5, 45), local(NEW_YORK, 2024, 11, 4, 1)),
    ("NY 02:00 once, in new time", cron("0 2 * * *", tz=NEW_YORK), local(NEW_YORK, 2024, 11, 3),
     utc(2024, 11, 3, 7)),
    ("NY every 15m: second pass too", cron("*/15 * * * *", tz=NEW_YORK),
     utc(2024, 11, 3, 5, 45), utc(2024, 11, 3, 6)),
    ("NY every 15m: out of the fold", cron("*/15 * * * *", tz=NEW_YORK),
     local(NEW_YORK, 2024, 11, 3, 1, 45, fold=1), utc(2024, 11, 3, 7)),
    ("NY hourly: 01:00 EDT to 01:00 EST", cron("0 * * * *", tz=NEW_YORK),
     local(NEW_YORK, 2024, 11, 3, 1), utc(2024, 11, 3, 6)),
    # Berlin, spring forward: 02:00-02:59 local does not exist on 31 March
    ("Berlin 02:30 skipped: 03:00", cron("30 2 * * *", tz=BERLIN), local(BERLIN, 2024, 3, 31),
     utc(2024, 3, 31, 1)),
    ("Berlin crontab 02:00: 03:00", crontab(minute=0, hour=2, tz=BERLIN),
     local(BERLIN, 2024, 3, 30, 12), utc(2024, 3, 31, 1)),
    ("Berlin hourly: 01:00 to 03:00", cron("0 * * * *", tz="Europe/Berlin"),
     utc(2024, 3, 31, 0), utc(2024, 3, 31, 1)),
    # Berlin, fall back: 02:00-02:59 local happens twice on 27 October
    ("Berlin 02:30 twice: the first", cron("30 2 * * *", tz=BERLIN), local(BERLIN, 2024, 10, 27),
     utc(2024, 10, 27, 0, 30)),
    ("Berlin 02:30: then the next day", cron("30 2 * * *", tz=BERLIN), utc(2024, 10, 27, 0, 30),
     utc(2024, 10, 28, 1, 30)),
    ("Berlin every 30m: second pass", cron("*/30 * * * *", tz=BERLIN), utc(2024, 10, 27, 0, 30),
     utc(2024, 10, 27, 1)),
    ("Berlin every 30m: in the fold", cron("*/30 * * * *", tz=BERLIN), utc(2024, 10, 27, 1),
     utc(2024, 10, 27, 1, 30)),
    # Lord Howe Island moves its clocks by half an hour: 02:00 -> 02:30 on 6 October 2024
    ("Lord Howe 02:15 skipped: 02:30", cron("15 2 * * *", tz="Australia/Lord_Howe"),
     utc(2024, 10, 5, 13), utc(2024, 10, 5, 15, 30)),
    # a fixed offset has no changes
    ("fixed offset", cron("0 7 * * *", tz=timezone(timedelta(hours=-5))), utc(2024, 3, 10),
     utc(2024, 3, 10, 12)),
]


@pytest.mark.parametrize(("schedule", "after", "expected"),
                         [row[1:] for row in NEXT_RUN], ids=[row[0] for row in NEXT_RUN])
def test_next_run(schedule: Schedule, after: datetime, expected: datetime) -> None:
    found = schedule.next_run(after)
    assert found == expected, f"{found.isoformat()} != {expected.astimezone(UTC).isoformat()}"
    assert found.tzinfo is UTC


LAST_RUN: list[tuple[str, Schedule, datetime, datetime | None]] = [
    ("every 5m", every(300), utc(2024, 5, 1, 10, 7), utc(2024, 5, 1, 10, 5)),
    ("every 5m, on a tick", every(300), utc(2024, 5, 1, 10, 5), utc(2024, 5, 1, 10, 5)),
    ("before the epoch anchor", every(300), utc(1969, 12, 31, 23, 59), None),
    ("before an anchor", every(timedelta(days=1), anchor=utc(2024, 1, 1, 7)), utc(2023, 12, 31),
     None),
    ("at the anchor", every(timedelta(days=1), anchor=utc(2024, 1, 1, 7)), utc(2024, 1, 1, 7),
     utc(2024, 1, 1, 7)),
    ("hourly", cron("0 * * * *"), utc(2024, 5, 1, 10, 30), utc(2024, 5, 1, 10)),
    ("hourly, on the hour", cron("0 * * * *"), utc(2024, 5, 1, 10), utc(2024, 5, 1, 10)),
    ("report, the same morning", cron("0 7 * * *", tz=MOSCOW), local(MOSCOW, 2024, 5, 1, 9),
     utc(2024, 5, 1, 4)),
    ("report, before 07:00", cron("0 7 * * *", tz=MOSCOW), local(MOSCOW, 2024, 5, 1, 6),
     utc(2024, 4, 30, 4)),
    ("weekdays, on Sunday", cron("30 9 * * mon-fri"), utc(2024, 5, 5, 12), utc(2024, 5, 3, 9, 30)),
    ("last day of the month", cron("0 0 L * *"), utc(2024, 3, 15), utc(2024, 2, 29)),
    ("29 February", cron("0 12 29 2 *"), utc(2027, 6, 1), utc(2024, 2, 29, 12)),
    ("NY gap: the 03:00 run", cron("30 2 * * *", tz=NEW_YORK), utc(2024, 3, 10, 7, 10),
     utc(2024, 3, 10, 7)),
    ("NY gap: before it, the day before", cron("30 2 * * *", tz=NEW_YORK),
     utc(2024, 3, 10, 6, 59), local(NEW_YORK, 2024, 3, 9, 2, 30)),
    ("NY fold: every 15m, second pass", cron("*/15 * * * *", tz=NEW_YORK), utc(2024, 11, 3, 6, 10),
     utc(2024, 11, 3, 6)),
    ("NY fold: on a second-pass tick", cron("*/15 * * * *", tz=NEW_YORK),
     local(NEW_YORK, 2024, 11, 3, 1, 30, fold=1), utc(2024, 11, 3, 6, 30)),
    # at 01:30 EST the latest 01:45 was the first pass's, a later-looking local time
    ("NY fold: a later-looking first run", cron("45 1 * * *", tz=NEW_YORK),
     local(NEW_YORK, 2024, 11, 3, 1, 30, fold=1), utc(2024, 11, 3, 5, 45)),
    ("Berlin fold: the first 02:30", cron("30 2 * * *", tz=BERLIN), utc(2024, 10, 27, 1, 40),
     utc(2024, 10, 27, 0, 30)),
]


@pytest.mark.parametrize(("schedule", "at", "expected"),
                         [row[1:] for row in LAST_RUN], ids=[row[0] for row in LAST_RUN])
def test_last_run(schedule: Schedule, at: datetime, expected: datetime | None) -> None:
    found = schedule.last_run(at)
    assert found == expected
    assert found is None or found.tzinfo is UTC


def test_last_run_finds_a_tick_missed_during_downtime() -> None:
    report = crontab(minute=0, hour=7, tz="Europe/Moscow")
    sent = utc(2024, 4, 30, 4)                     # the beat sent 30 April's report, then died
    back = local(MOSCOW, 2024, 5, 2, 9, 15)        # and came back two days later
    missed = report.last_run(back)
    assert missed == utc(2024, 5, 2, 4)            # the latest due tick, to run once now
    assert missed > sent
    assert report.next_run(back) == utc(2024, 5, 3, 4)
    assert report.last_run(sent + timedelta(hours=1)) == sent  # up: nothing missed


# A whole local day, first tick to last: (schedule, day start, day end, ticks in the day)
DAYS: list[tuple[str, CronSchedule, int, int, int, int]] = [
    ("NY spring hourly", cron("0 * * * *", tz=NEW_YORK), 2024, 3, 10, 23),
    ("NY fall hourly", cron("0 * * * *", tz=NEW_YORK), 2024, 11, 3, 25),
    ("NY spring every 15m", cron("*/15 * * * *", tz=NEW_YORK), 2024, 3, 10, 92),
    ("NY fall every 15m", cron("*/15 * * * *", tz=NEW_YORK), 2024, 11, 3, 100),
    ("NY spring daily in the gap", cron("30 2 * * *", tz=NEW_YORK), 2024, 3, 10, 1),
    ("NY fall daily in the fold", cron("30 1 * * *", tz=NEW_YORK), 2024, 11, 3, 1),
    ("NY spring every 15m of 02:xx", cron("*/15 2 * * *", tz=NEW_YORK), 2024, 3, 10, 1),
    ("NY fall every 15m of 01:xx", cron("*/15 1 * * *", tz=NEW_YORK), 2024, 11, 3, 4),
    ("Berlin spring hourly", cron("0 * * * *", tz=BERLIN), 2024, 3, 31, 23),
    ("Berlin fall hourly", cron("0 * * * *", tz=BERLIN), 2024, 10, 27, 25),
    ("Berlin fall daily 02:30", cron("30 2 * * *", tz=BERLIN), 2024, 10, 27, 1),
]


@pytest.mark.parametrize(("schedule", "year", "month", "day", "count"),
                         [row[1:] for row in DAYS], ids=[row[0] for row in DAYS])
def test_ticks_in_a_changeover_day(schedule: CronSchedule, year: int, month: int, day: int,
                                   count: int) -> None:
    start = datetime(year, month, day, tzinfo=schedule.tz)
    end = start + timedelta(days=1)   # wall-clock arithmetic: the next local midnight
    ticks, tick = [], schedule.next_run(start - timedelta(microseconds=1))
    while tick < end:
        ticks.append(tick)
        tick = schedule.next_run(tick)
    assert len(ticks) == count
    assert ticks == sorted(set(ticks))


def test_every_15_minutes_keeps_real_spacing_through_both_changes() -> None:
    schedule = cron("*/15 * * * *", tz=NEW_YORK)
    for day in (utc(2024, 3, 10), utc(2024, 11, 3)):
        tick = schedule.next_run(day)
        for _ in range(4 * 12):
            following = schedule.next_run(tick)
            assert following - tick == timedelta(minutes=15)
            tick = following


SCHEDULES: list[Schedule] = [
    every(300), every(0.1), every(timedelta(hours=7, seconds=3), anchor=utc(2024, 3, 1, 0, 0, 7)),
    cron("0 7 * * *", tz=MOSCOW), cron("*/15 * * * *", tz=NEW_YORK),
    cron("30 * * * *", tz=BERLIN), cron("30 2 * * *", tz=NEW_YORK), cron("30 1 * * *", NEW_YORK),
    cron("*/20 1-3 * * *", tz=BERLIN), cron("0 0 L * *", tz="Australia/Lord_Howe"),
    crontab(minute="*/7", hour="0-3", tz="Australia/Lord_Howe"),
    crontab(0, 0, day_of_month="1-7", day_of_week="sun", tz=NEW_YORK),
]


@pytest.mark.parametrize("schedule", SCHEDULES, ids=[s.describe() for s in SCHEDULES])
def test_ticks_are_consistent_around_many_instants(schedule: Schedule) -> None:
    # Stand-in for a property test: instants across the 2024 changes in New York, Berlin and
    # Lord Howe (a half-hour change), at odd offsets, plus seeded random ones.
    rng = random.Random(20240310)
    starts = [utc(2024, 3, 9, 22), utc(2024, 3, 30, 22), utc(2024, 10, 26, 22),
              utc(2024, 11, 2, 22), utc(2024, 4, 6, 13), utc(2024, 10, 5, 13)]
    instants = [s + timedelta(minutes=11 * i, seconds=i % 3 * 20) for s in starts
                for i in range(60)]
    instants += [utc(2020, 1, 1) + timedelta(seconds=rng.uniform(0, 3e8)) for _ in range(100)]
    for moment in instants:
        tick = schedule.next_run(moment)
        assert tick > moment
        assert schedule.last_run(tick) == tick
        assert schedule.next_run(tick) > tick
        previous = schedule.last_run(moment)
        if previous is not None:
            assert previous <= moment
            assert schedule.next_run(previous) == tick  # no tick between the two


def test_next_run_is_strictly_increasing() -> None:
    for schedule in SCHEDULES:
        tick = schedule.next_run(utc(2024, 10, 26, 23, 50))
        seen = {tick}
        for _ in range(150):
            following = schedule.next_run(tick)
            assert following > tick and following not in seen
            seen.add(following)
            tick = following


@pytest.mark.parametrize("schedule", [every(300), cron("0 7 * * *"), crontab(minute=0)],
                         ids=["every", "cron", "crontab"])
def test_naive_datetimes_are_refused(schedule: Schedule) -> None:
    with pytest.raises(ConfigurationError, match="naive datetime given as 'after'"):
        schedule.next_run(datetime(2024, 1, 1, 7))
    with pytest.raises(ConfigurationError, match="naive datetime given as 'at'"):
        schedule.last_run(datetime(2024, 1, 1, 7))


BAD: list[tuple[str, Any, str]] = [
    ("minute", lambda: cron("61 * * * *"), "invalid minute field '61' in cron expression "
     "'61 * * * *': expected 0-59"),
    ("hour", lambda: cron("0 24 * * *"), "invalid hour field '24'"),
    ("day of month", lambda: cron("0 0 32 * *"), "invalid day of month field '32'"),
    ("month", lambda: cron("0 0 1 13 *"), "invalid month field '13'"),
    ("day of week", lambda: cron("0 0 * * 8"), "invalid day of week field '8'"),
    ("a word", lambda: cron("0 0 * * funday"), "invalid day of week field 'funday'"),
    ("a zero step", lambda: cron("*/0 * * * *"), "invalid minute field '*/0'"),
    ("four fields", lambda: cron("0 0 * *"), "has 4 fields; expected 5"),
    ("seconds field", lambda: cron("0 0 0 * * *"), "has 6 fields; expected 5"),
    ("empty", lambda: cron(""), "has 0 fields"),
    ("never matches", lambda: cron("0 0 30 2 *"), "'0 0 30 2 *' matches no date"),
    ("hashed", lambda: cron("H * * * *"), "hashed (H) and random (R) values are not supported"),
    ("random", lambda: cron("0 R * * *"), "hour field 'r'"),
    ("time zone", lambda: cron("0 7 * * *", tz="Mars/Olympus"),
     "unknown time zone 'Mars/Olympus'"),
    ("zone folder", lambda: cron("0 7 * * *", tz="Europe"), "unknown time zone 'Europe'"),
    ("zone type", lambda: cron("0 7 * * *", tz=3), "tz must be an IANA name or a tzinfo"),
    ("crontab minute", lambda: crontab(minute=60), "invalid minute field '60' in crontab("),
    ("crontab weekday", lambda: crontab(day_of_week="funday"),
     "invalid day_of_week field 'fun' in crontab(day_of_week='funday')"),
    ("crontab month", lambda: crontab(month_of_year=[1, 13]), "invalid month_of_year field"),
    ("crontab empty list", lambda: crontab(hour=[]), "crontab hour must list ints or strings"),
    ("crontab bool", lambda: crontab(hour=True), "crontab hour must be an int"),
    ("crontab no date", lambda: crontab(0, 0, day_of_month=30, month_of_year=2),
     "matches no date"),
    ("crontab zone", lambda: crontab(tz="Nowhere"), "unknown time zone 'Nowhere'"),
    ("zero interval", lambda: every(0), "interval must be positive"),
    ("negative interval", lambda: every(timedelta(seconds=-5)), "interval must be positive"),
    ("tiny interval", lambda: every(0.05), "interval must be at least 0.1 s, got 0.05 s"),
    ("nan interval", lambda: every(float("nan")), "finite number of seconds"),
    ("huge interval", lambda: every(1e20), "interval is too long"),
    ("string interval", lambda: every("5m"), "interval must be a timedelta or seconds, not str"),
    ("bool interval", lambda: every(True), "not bool"),
    ("naive anchor", lambda: every(60, anchor=datetime(2024, 1, 1)),
     "naive datetime given as 'anchor'"),
]


@pytest.mark.parametrize(("make", "message"), [row[1:] for row in BAD], ids=[r[0] for r in BAD])
def test_bad_definitions_are_refused_with_clear_messages(make: Any, message: str) -> None:
    with pytest.raises(ConfigurationError, match=re.escape(message)):
        make()


DESCRIBE: list[tuple[Schedule, str]] = [
    (every(300), "every 5m"),
    (every(timedelta(minutes=5)), "every 5m"),
    (every(timedelta(hours=1, minutes=30)), "every 1h30m"),
    (every(86400), "every 1d"),
    (every(0.5), "every 0.5s"),
    (every(61.25), "every 1m1.25s"),
    (every(timedelta(days=1), anchor=utc(2024, 1, 1, 7)),
     "every 1d from 2024-01-01T07:00:00+00:00"),
    (cron("0 7 * * *", tz="Europe/Moscow"), "cron 0 7 * * * (Europe/Moscow)"),
    (crontab(minute=0, hour=7, tz="Europe/Moscow"), "cron 0 7 * * * (Europe/Moscow)"),
    (cron("0 * * * *"), "cron 0 * * * * (UTC)"),
    (cron("0 7 * * *", tz=timezone(timedelta(hours=3))), "cron 0 7 * * * (UTC+03:00)"),
    (cron("@daily"), "cron 0 0 * * * (UTC)"),
    (cron("  0  7 * *   MON-FRI "), "cron 0 7 * * mon-fri (UTC)"),
    (crontab(minute={30, 0}, hour="9-17", day_of_week="monday-friday"),
     "cron 0,30 9-17 * * mon-fri (UTC)"),
    (crontab(0, 0, day_of_month="1-7", day_of_week="mon"),
     "cron 0 0 1-7 * mon (UTC, day of month and day of week both)"),
]


@pytest.mark.parametrize(("schedule", "text"), DESCRIBE, ids=[t for _, t in DESCRIBE])
def test_describe(schedule: Schedule, text: str) -> None:
    assert schedule.describe() == text


SAME: list[tuple[Schedule, Schedule]] = [
    (every(300), every(timedelta(minutes=5))),
    (every(300), every(300.0)),
    (every(60, anchor=utc(2024, 1, 1, 4)), every(60, anchor=local(MOSCOW, 2024, 1, 1, 7))),
    (cron("0 7 * * *", tz="Europe/Moscow"), crontab(minute=0, hour=7, tz="Europe/Moscow")),
    (cron("0 7 * * *", tz="Europe/Moscow"), cron("0  7 * * *", tz=ZoneInfo("Europe/Moscow"))),
    (cron("@daily"), cron("0 0 * * *")),
    (cron("0 0 * * *"), cron("0 0 * * *", tz="UTC")),
    (crontab(minute={30, 0}), crontab(minute=[0, 30, 30])),
    (crontab(minute={30, 0}), cron("0,30 * * * *")),
    (crontab(day_of_week="Sunday"), cron("* * * * sun")),
]
DIFFERENT: list[tuple[Schedule, Schedule]] = [
    (every(300), every(301)),
    (every(300), every(300, anchor=utc(1970, 1, 1, 0, 0, 1))),
    (cron("0 7 * * *", tz="Europe/Moscow"), cron("0 7 * * *", tz="Europe/Berlin")),
    (cron("0 7 * * *"), cron("0 8 * * *")),
    (cron("0 0 1-7 * mon"), crontab(0, 0, day_of_month="1-7", day_of_week="mon")),
    (cron("0 0 * * *"), every(timedelta(days=1))),
]


@pytest.mark.parametrize(("one", "other"), SAME, ids=[a.describe() for a, _ in SAME])
def test_equal_definitions_have_equal_keys(one: Schedule, other: Schedule) -> None:
    assert one.key() == other.key()
    assert one == other and hash(one) == hash(other)


@pytest.mark.parametrize(("one", "other"), DIFFERENT, ids=[a.describe() for a, _ in DIFFERENT])
def test_different_definitions_have_different_keys(one: Schedule, other: Schedule) -> None:
    assert one.key() != other.key()
    assert one != other


def test_keys_are_plain_stable_text() -> None:
    assert every(300).key() == "every:300s:1970-01-01T00:00:00+00:00"
    assert every(0.25).key() == "every:0.25s:1970-01-01T00:00:00+00:00"
    assert cron("0 7 * * *", tz="Europe/Moscow").key() == "cron:0 7 * * *:Europe/Moscow"
    assert crontab(0, 0, day_of_month=1, day_of_week=1).key() == "cron:0 0 1 * 1:UTC:and"


class _PytzLike(tzinfo):
    """Stands for a pytz zone, which ignores ``fold`` and needs ``localize``."""

    def localize(self, moment: datetime) -> datetime:
        return moment.replace(tzinfo=self)

    def utcoffset(self, moment: datetime | None) -> timedelta:
        return timedelta(0)


def test_pytz_zones_are_refused() -> None:
    with pytest.raises(ConfigurationError, match="pytz time zones are not supported"):
        cron("0 7 * * *", tz=_PytzLike())


def test_schedules_meet_the_protocol() -> None:
    for schedule in (every(60), cron("* * * * *"), crontab()):
        assert isinstance(schedule, Schedule)
    assert isinstance(every(60), IntervalSchedule)
    assert isinstance(crontab(), CronSchedule)
