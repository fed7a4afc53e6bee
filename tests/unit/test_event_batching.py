"""A worker's events are written in batches, one write per FLUSH_EVERY while they keep coming,
on a real SQLite store: events emitted during a write wait for the next tick."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from pathlib import Path

from conveyor.brokers import open_store
from conveyor.brokers.sqlite import SQLiteStore, parse_url
from conveyor.events import Event, Retention
from conveyor.middleware.events import FLUSH_EVERY, EventBuffer


class CountingStore(SQLiteStore):
    """The real store, counting its event writes."""

    writes = 0

    async def append_events(self, events: Sequence[Event], retention: Retention) -> None:
        self.writes += 1
        await super().append_events(events, retention)


async def test_events_emitted_steadily_are_written_once_per_tick(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/events.db"
    store = CountingStore(url, parse_url(url))
    buffer = EventBuffer(store, Retention())
    sent = 0
    started = time.monotonic()
    while time.monotonic() - started < 5 * FLUSH_EVERY:  # a steady stream for ~0.5 s
        buffer.emit(Event("task-succeeded", time.time(), f"t{sent}"))
        sent += 1
        await asyncio.sleep(0.001)
    elapsed = time.monotonic() - started
    await buffer.close()
    # one write per tick (plus the last at close); before, one per write's duration
    assert store.writes <= elapsed / FLUSH_EVERY + 2, (store.writes, sent)
    found = await store.read_events("0", 100_000, 0.0)
    assert sorted(e.task_id for e in found) == sorted(f"t{i}" for i in range(sent))
    await store.aclose()


async def test_events_left_after_a_write_are_written_without_another_emit(
        tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path}/events.db")
    assert isinstance(store, SQLiteStore)
    buffer = EventBuffer(store, Retention())
    buffer.emit(Event("task-received", time.time(), "first"))
    await asyncio.sleep(FLUSH_EVERY / 2)
    buffer.emit(Event("task-received", time.time(), "second"))
    deadline = time.monotonic() + 30
    found: list[Event] = []
    while time.monotonic() < deadline and len(found) < 2:
        found = await store.read_events("0", 10, 0.0)
        await asyncio.sleep(0.05)
    assert [e.task_id for e in found] == ["first", "second"]
    await buffer.close()
    await store.aclose()
