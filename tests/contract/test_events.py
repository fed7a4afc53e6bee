"""The event log: the same cases for every store that keeps events."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from conveyor.brokers import EventLog
from conveyor.events import (
    TASK_STARTED,
    TASK_SUCCEEDED,
    WORKER_HEARTBEAT,
    WORKER_OFFLINE,
    WORKER_ONLINE,
    Event,
    Retention,
)
from tests.contract.conftest import needs

pytestmark = pytest.mark.timeout(30)
KEEP = Retention(1000, 3600)


def task_event(kind: str, task_id: str, **fields: Any) -> Event:
    return Event(kind, time.time(), task_id, "shop.add", "w1", 42, fields)


async def test_appended_events_read_back_in_order_and_resume_after_an_id(store: Any) -> None:
    needs(store, EventLog, "an event log")
    await store.append_events([task_event(TASK_STARTED, "a"),
                               task_event(TASK_SUCCEEDED, "a", runtime=0.5)], KEEP)
    store.append_events_sync([task_event(TASK_STARTED, "b")], KEEP)
    got = await store.read_events("0", 100, 0.1)
    assert [(e.kind, e.task_id) for e in got] == [
        (TASK_STARTED, "a"), (TASK_SUCCEEDED, "a"), (TASK_STARTED, "b")]
    assert got[1].fields == {"runtime": 0.5} and got[1].worker == "w1" and got[1].pid == 42
    rest = await store.read_events(got[0].id, 100, 0.1)
    assert [e.id for e in rest] == [got[1].id, got[2].id]
    assert await store.read_events(await store.last_event_id(), 100, 0.1) == []


async def test_a_reader_waiting_for_events_wakes_when_one_arrives(store: Any) -> None:
    needs(store, EventLog, "an event log")
    await store.append_events([task_event(TASK_STARTED, "old")], KEEP)
    cursor = await store.last_event_id()
    reader = asyncio.ensure_future(store.read_events(cursor, 10, 5.0))
    await asyncio.sleep(0.3)
    assert not reader.done()
    started = time.monotonic()
    await store.append_events([task_event(TASK_STARTED, "new")], KEEP)
    got = await asyncio.wait_for(reader, 3.0)
    assert [e.task_id for e in got] == ["new"]
    assert time.monotonic() - started < 1.5


async def test_reading_with_nothing_new_returns_empty_after_the_wait(store: Any) -> None:
    needs(store, EventLog, "an event log")
    started = time.monotonic()
    assert await store.read_events(None, 10, 0.3) == []
    assert 0.2 <= time.monotonic() - started < 2.0


async def test_retention_bounds_the_log(store: Any) -> None:
    needs(store, EventLog, "an event log")
    small = Retention(50, 3600)
    for batch in range(10):
        await store.append_events(
            [task_event(TASK_STARTED, f"{batch}-{i}") for i in range(100)], small)
    kept = await store.read_events("0", 10_000, 0.1)
    # approximate trimming (a Redis stream trims whole nodes) may keep a little more
    assert 50 <= len(kept) <= 250
    assert kept[-1].task_id == "9-99"


async def test_events_older_than_the_retention_age_go(store: Any) -> None:
    needs(store, EventLog, "an event log")
    brief = Retention(1000, 0.5)
    await store.append_events([task_event(TASK_STARTED, "early")], brief)
    await asyncio.sleep(0.8)
    await store.append_events([task_event(TASK_STARTED, "late")], brief)
    ids = [e.task_id for e in await store.read_events("0", 100, 0.1)]
    assert ids == ["late"]


async def test_heartbeats_keep_the_latest_per_process_until_offline(store: Any) -> None:
    needs(store, EventLog, "an event log")
    beat = lambda kind, pid, n: Event(kind, time.time(), worker="w", pid=pid,  # noqa: E731
                                      fields={"processed": n})
    await store.append_events([beat(WORKER_ONLINE, 1, 0), beat(WORKER_ONLINE, 2, 0)], KEEP)
    await store.append_events([beat(WORKER_HEARTBEAT, 1, 5)], KEEP)
    latest = {e.pid: e for e in await store.heartbeats()}
    assert latest[1].kind == WORKER_HEARTBEAT and latest[1].fields["processed"] == 5
    assert latest[2].kind == WORKER_ONLINE
    await store.append_events([beat(WORKER_OFFLINE, 2, 0)], KEEP)
    assert [e.pid for e in await store.heartbeats()] == [1]
