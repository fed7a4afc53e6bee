"""The SQLite store's event log: two tables and the statements on them.

``events`` holds the log in id order, one row per append (a worker's batch of events; an
event's id is ``row:index``); ``workers`` the latest heartbeat of each worker process.
Appends commit without waiting for the disk (events are monitoring: a power cut may lose the
last ones, never a task), and trim the log to its retention in the same transaction, a batch at
a time so a trim never holds the write lock for long.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

from ..events import (
    WORKER_KINDS,
    WORKER_OFFLINE,
    Event,
    Retention,
    after_cursor,
    decode_batch,
    encode_batch,
)

SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    id   INTEGER PRIMARY KEY AUTOINCREMENT,
    at   REAL NOT NULL,
    data BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS events_at ON events (at);
CREATE TABLE IF NOT EXISTS workers (
    process TEXT PRIMARY KEY,  -- worker/pid
    at      REAL NOT NULL,
    data    BLOB NOT NULL
);
"""

#: Rows a single trim deletes at most; appends trim a little every time, so this keeps up.
_TRIM_BATCH = 5000


def append_rows(conn: sqlite3.Connection, events: Sequence[Event], retention: Retention,
                now: float) -> None:
    """Insert ``events`` as one row, note worker heartbeats, trim beyond ``retention``; one
    transaction."""
    conn.execute("INSERT INTO events (at, data) VALUES (?, ?)",
                 (max(e.at for e in events), encode_batch(events)))
    for event in events:
        if event.kind == WORKER_OFFLINE:
            conn.execute("DELETE FROM workers WHERE process = ?", (event.process,))
        elif event.kind in WORKER_KINDS:
            conn.execute("INSERT OR REPLACE INTO workers (process, at, data) VALUES (?, ?, ?)",
                         (event.process, event.at, event.encode()))
    trim(conn, retention, len(events), now)


def trim(conn: sqlite3.Connection, retention: Retention, batch: int, now: float) -> None:
    """Delete the oldest events past the retention count or age, a bounded batch of each, by
    index ranges (the primary key and ``events_at``), so a trim never scans the log."""
    conn.execute("DELETE FROM events WHERE id IN (SELECT id FROM events WHERE id <="
                 " (SELECT max(id) FROM events) - ? ORDER BY id LIMIT ?)",
                 (retention.entries(batch), _TRIM_BATCH))
    conn.execute("DELETE FROM events WHERE id IN (SELECT id FROM events WHERE at < ?"
                 " ORDER BY at LIMIT ?)", (now - retention.age, _TRIM_BATCH))


def read_rows(conn: sqlite3.Connection, after: str, limit: int) -> list[Event]:
    """Up to ``limit`` events after the cursor ``after`` (see ``events.after_cursor``)."""
    entry = int(after.partition(":")[0] or 0)
    rows = conn.execute("SELECT id, data FROM events WHERE id >= ? ORDER BY id LIMIT ?",
                        (entry, limit)).fetchall()
    found = [e for row_id, data in rows for e in decode_batch(bytes(data), str(row_id))]
    return after_cursor(found, after)[:limit]


def last_id(conn: sqlite3.Connection) -> str | None:
    """The cursor after every event kept (the newest entry as a whole)."""
    found = conn.execute("SELECT max(id) FROM events").fetchone()[0]
    return None if found is None else str(found)


def heartbeat_rows(conn: sqlite3.Connection) -> list[Event]:
    rows = conn.execute("SELECT process, data FROM workers ORDER BY process").fetchall()
    return [Event.decode(bytes(data), "") for _, data in rows]
