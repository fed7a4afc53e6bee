"""Periodic entries and the beat: which ticks are due (table tests of a pure function), and beats
stepped on a fake clock over a memory store (leads, takeovers, restarts, catch-up, one send
per tick)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from conveyor import ConfigurationError, Conveyor, Task
from conveyor.clock import FakeClock
from conveyor.schedule import Schedule, cron, crontab, every
from conveyor.schedule.beat import Beat, tick_id
from conveyor.schedule.due import baseline, due
from conveyor.schedule.entries import MAX_CATCH_UP, Entry, entries
from conveyor.testing import run_queued

pytestmark = pytest.mark.timeout(30)


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)  # type: ignore[arg-type, misc]


MINUTE = every(timedelta(minutes=1))
REPORT = crontab(minute=0, hour=7, tz="Europe/Moscow")  # 04:00 UTC every day
HOURLY = cron("0 * * * *")
BERLIN_0230 = cron("30 2 * * *", tz="Europe/Berlin")

# schedule, last reached, now, catch_up, resumed -> ticks sent, tick reached
DUE_CASES: list[tuple[str, Schedule, datetime, datetime, str, bool, list[datetime],
                      datetime]] = [
    ("nothing due yet", MINUTE, utc(2024, 5, 1, 10, 0), utc(2024, 5, 1, 10, 0, 59), "once",
     False, [], utc(2024, 5, 1, 10, 0)),
    ("a tick due right now", MINUTE, utc(2024, 5, 1, 10, 0), utc(2024, 5, 1, 10, 1), "once",
     False, [utc(2024, 5, 1, 10, 1)], utc(2024, 5, 1, 10, 1)),
    ("a leader that stalled sends each tick", MINUTE, utc(2024, 5, 1, 10, 0),
     utc(2024, 5, 1, 10, 2, 30), "once", False,
     [utc(2024, 5, 1, 10, 1), utc(2024, 5, 1, 10, 2)], utc(2024, 5, 1, 10, 2)),
    ("resumed, once: the latest missed report", REPORT, utc(2024, 5, 1, 4), utc(2024, 5, 3, 9),
     "once", True, [utc(2024, 5, 3, 4)], utc(2024, 5, 3, 4)),
    ("resumed, skip: none, and they count as reached", REPORT, utc(2024, 5, 1, 4),
     utc(2024, 5, 3, 9), "skip", True, [], utc(2024, 5, 3, 4)),
    ("resumed, all: every missed report", REPORT, utc(2024, 5, 1, 4), utc(2024, 5, 3, 9),
     "all", True, [utc(2024, 5, 2, 4), utc(2024, 5, 3, 4)], utc(2024, 5, 3, 4)),
    ("resumed before the next report: nothing missed", REPORT, utc(2024, 5, 3, 4),
     utc(2024, 5, 3, 9), "once", True, [], utc(2024, 5, 3, 4)),
    ("hourly clean-up after five hours down", HOURLY, utc(2024, 5, 1, 10), utc(2024, 5, 1, 15, 5),
     "once", True, [utc(2024, 5, 1, 15)], utc(2024, 5, 1, 15)),
    ("02:30 Berlin on the spring-forward night runs at 03:00 local", BERLIN_0230,
     utc(2024, 3, 30, 1, 30), utc(2024, 3, 31, 1, 0), "once", False, [utc(2024, 3, 31, 1)],
     utc(2024, 3, 31, 1)),
    ("Moscow keeps 07:00 in winter and summer", REPORT, utc(2024, 1, 15, 4),
     utc(2024, 1, 16, 4), "once", False, [utc(2024, 1, 16, 4)], utc(2024, 1, 16, 4)),
]


@pytest.mark.parametrize(("schedule", "last", "now", "catch_up", "resumed", "send", "reached"),
                         [c[1:] for c in DUE_CASES], ids=[c[0] for c in DUE_CASES])
def test_due_ticks(schedule: Schedule, last: datetime, now: datetime, catch_up: Any,
                   resumed: bool, send: list[datetime], reached: datetime) -> None:
    found = due(schedule, last, now, catch_up, resumed)
    assert list(found.send) == send
    assert found.reached == reached


def test_catching_up_every_missed_tick_is_bounded() -> None:
    now = utc(2024, 5, 1, 12)
    found = due(every(1.0), now - timedelta(seconds=5000), now, "all", True)
    assert len(found.send) == MAX_CATCH_UP
    assert found.send[0] == now - timedelta(seconds=MAX_CATCH_UP - 1)
    assert found.send[-1] == found.reached == now


def test_a_new_entry_starts_from_its_latest_tick_without_sending_it() -> None:
    assert baseline(MINUTE, utc(2024, 5, 1, 10, 0, 30)) == utc(2024, 5, 1, 10, 0)
    assert baseline(REPORT, utc(2024, 5, 1, 9)) == utc(2024, 5, 1, 4)
    later = every(60.0, anchor=utc(2030, 1, 1))  # no tick yet: start from now
    assert baseline(later, utc(2024, 5, 1, 9)) == utc(2024, 5, 1, 9)


# -- entries ----------------------------------------------------------------------------------
def test_entries_from_code_decorators_and_configuration() -> None:
    app = Conveyor("entries", broker="memory://", timezone="Europe/Moscow")

    @app.task
    def cleanup(days: int) -> None: ...

    @app.periodic(cron="0 7 * * *")  # in the app's time zone
    def daily_report() -> None: ...

    @app.periodic(every=timedelta(minutes=5), name="poll", catch_up="skip")
    async def poll() -> None: ...

    app.add_periodic_task(3600, cleanup.s(30), name="cleanup")
    app.add_periodic_task(crontab(minute=0, hour=2), cleanup.s(), args=(7,), name="deep")
    app.conf.beat_schedule = {"nightly": {"task": "shop.nightly", "schedule": "0 3 * * *",
                                          "kwargs": {"full": True}, "catch_up": "all"}}
    found = {e.name: e for e in entries(app)}
    assert set(found) == {daily_report.name, "poll", "cleanup", "deep", "nightly"}
    assert found[daily_report.name].schedule == cron("0 7 * * *", tz="Europe/Moscow")
    assert found["poll"].schedule.key() == every(300).key() and found["poll"].catch_up == "skip"
    assert found["cleanup"].schedule.key() == every(3600).key()
    assert found["deep"].signature.args == (7,) and found["cleanup"].catch_up == "once"
    nightly = found["nightly"]
    assert nightly.signature.task == "shop.nightly" and nightly.signature.kwargs == {"full": True}
    assert nightly.schedule == cron("0 3 * * *", tz="Europe/Moscow")
    assert isinstance(poll, Task) and poll.is_async


def test_bad_entries_are_refused_with_the_reason() -> None:
    app = Conveyor("bad-entries", broker="memory://")

    @app.task
    def job() -> None: ...

    app.add_periodic_task(60, job.s(), name="job")
    with pytest.raises(ConfigurationError, match="two periodic entries are named 'job'"):
        app.add_periodic_task(30, job.s(), name="job")
    with pytest.raises(ConfigurationError, match="catch_up must be one of once, skip, all"):
        app.add_periodic_task(30, job.s(), name="x", catch_up="twice")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="schedule must be seconds"):
        app.add_periodic_task([1], job.s(), name="y")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="one of cron=, every= or schedule="):
        app.periodic(cron="* * * * *", every=5)
    with pytest.raises(ConfigurationError, match="invalid hour field"):
        app.periodic(cron="0 24 * * *")
    app.conf.beat_schedule = {"z": {"task": "t", "schedule": 5, "when": 1}}
    with pytest.raises(ConfigurationError, match="unknown key"):
        entries(app)


# -- beats on a fake clock --------------------------------------------------------------------
class Beats:
    """An app on a memory store and a fake clock, and beats over it stepped by hand."""

    def __init__(self, catch_up: Any = "all", start: float = 1_700_000_000.25) -> None:
        self.clock = FakeClock(start)
        self.app = Conveyor("beats", broker=f"memory://beat-{uuid.uuid4().hex}",
                            clock=self.clock, beat_lease=3.0)
        self.ran: list[tuple[datetime, str]] = []

        @self.app.periodic(every=1.0, name="tick", bind=True, catch_up=catch_up)
        def tick(task: Task[Any, Any]) -> None:
            when = task.request.scheduled_for
            assert when is not None
            self.ran.append((when, task.request.id))

    def beat(self, name: str) -> Beat:
        return Beat(self.app, name=name)

    def step(self, *beats: Beat, seconds: float, every: float = 0.25) -> None:
        async def run() -> None:
            for _ in range(round(seconds / every)):
                for beat in beats:
                    await beat.step()
                self.clock.advance(every)

        asyncio.run(run())

    def ticks(self) -> list[float]:
        run_queued(self.app)
        return sorted(when.timestamp() for when, _ in self.ran)


def consecutive(ticks: list[float]) -> bool:
    return ticks == [ticks[0] + i for i in range(len(ticks))]


@pytest.fixture
def beats() -> Iterator[Beats]:
    made = Beats()
    yield made
    made.app.close()


def test_two_beats_send_each_tick_once(beats: Beats) -> None:
    one, two = beats.beat("one"), beats.beat("two")
    beats.step(one, two, seconds=10)
    assert one.leader.leading != two.leader.leading  # one leads, the other stands by
    ticks = beats.ticks()
    assert len(ticks) == 10 and consecutive(ticks)
    assert all(task_id == tick_id(beats.app, "tick", when) for when, task_id in beats.ran)


def test_another_beat_takes_over_when_the_leader_stops(beats: Beats) -> None:
    one, two = beats.beat("one"), beats.beat("two")
    beats.step(one, two, seconds=3)
    other = two if one.leader.leading else one
    assert not other.leader.leading
    beats.step(other, seconds=5)  # the leader is "killed": it no longer renews its lease
    assert other.leader.leading
    ticks = beats.ticks()  # catch_up="all": the ticks due during the takeover are sent too
    assert len(ticks) == 8 and consecutive(ticks)


def test_a_restarted_beat_neither_sends_again_nor_skips(beats: Beats) -> None:
    beats.step(beats.beat("first"), seconds=3)
    asyncio.run(beats.app.backend.adelete_value("beat:beats:leader"))  # as after a stop
    beats.clock.advance(4)  # down for four seconds
    beats.step(beats.beat("second"), seconds=3)
    ticks = beats.ticks()
    assert len(ticks) == 10 and consecutive(ticks)


@pytest.mark.parametrize(("catch_up", "missed"), [("once", 1), ("skip", 0), ("all", 4)])
def test_catch_up_after_downtime(catch_up: str, missed: int) -> None:
    beats = Beats(catch_up)
    try:
        beats.step(beats.beat("first"), seconds=3)
        before = len(beats.ticks())
        beats.clock.advance(4.5)  # the lease runs out; four ticks come due meanwhile
        beats.step(beats.beat("second"), seconds=0.25)
        assert len(beats.ticks()) - before == missed
    finally:
        beats.app.close()


def test_a_beat_that_kept_acting_as_leader_cannot_send_a_tick_twice(beats: Beats) -> None:
    """Two beats that both believe they lead (one was paused past its lease) still send a
    tick once: the per-tick key is taken before the send."""
    one, two = beats.beat("one"), beats.beat("two")
    beats.step(one, seconds=2)
    entry = one.entries[0]
    sent = beats.app.broker.stats("default").ready
    assert sent == 2
    for tick in (utc(2023, 11, 14, 22, 13, 21), utc(2023, 11, 14, 22, 13, 30)):  # old, new
        assert asyncio.run(one._send(entry, tick)) and asyncio.run(two._send(entry, tick))
    assert beats.app.broker.stats("default").ready == sent + 1  # the new one, once


def test_a_changed_schedule_starts_afresh(beats: Beats) -> None:
    beats.step(beats.beat("first"), seconds=3)
    entry = beats.app.periodic_tasks["tick"]
    slower = Entry("tick", every(2.0), entry.signature)
    beats.clock.advance(6)
    beats.step(Beat(beats.app, schedule=[slower], name="second"), seconds=4.5)
    ticks = beats.ticks()
    assert len(ticks) == 3 + 2  # nothing of the old schedule caught up; then every 2 s
    assert ticks[-1] - ticks[-2] == 2.0
