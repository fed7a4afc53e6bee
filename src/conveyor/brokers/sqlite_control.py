"""The SQLite store's control tables: the command stream, the revocation set, and the two queue
operations of ``app.control``: listing delayed messages and waking them early.

``control`` is the command stream (appended and trimmed in one transaction, like ``events``,
and announced on its own doorbell channel); ``revoked`` holds revoked ids until their expiry.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

from ..events import Event, Retention
from .base import Envelope

SCHEMA = """
CREATE TABLE IF NOT EXISTS control (
    id   INTEGER PRIMARY KEY AUTOINCREMENT,
    at   REAL NOT NULL,
    data BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS control_at ON control (at);
CREATE TABLE IF NOT EXISTS revoked (
    id         TEXT PRIMARY KEY,
    expires_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS revoked_expiry ON revoked (expires_at);
"""

_DELAYED = 1  # the messages table's state of a message waiting for its ETA


def append_rows(conn: sqlite3.Connection, entries: Sequence[Event], retention: Retention,
                now: float) -> list[str]:
    """Insert ``entries`` and trim the stream to ``retention``; the caller holds a transaction."""
    ids = [str(conn.execute("INSERT INTO control (at, data) VALUES (?, ?) RETURNING id",
                            (e.at, e.encode())).fetchone()[0]) for e in entries]
    conn.execute("DELETE FROM control WHERE id <= (SELECT max(id) FROM control) - ?",
                 (retention.count,))
    conn.execute("DELETE FROM control WHERE at < ?", (now - retention.age,))
    return ids


def read_rows(conn: sqlite3.Connection, after: int, limit: int) -> list[Event]:
    rows = conn.execute("SELECT id, data FROM control WHERE id > ? ORDER BY id LIMIT ?",
                        (after, limit)).fetchall()
    return [Event.decode(bytes(data), str(entry_id)) for entry_id, data in rows]


def last_id(conn: sqlite3.Connection) -> str | None:
    found = conn.execute("SELECT max(id) FROM control").fetchone()[0]
    return None if found is None else str(found)


def revoke(conn: sqlite3.Connection, ids: Sequence[str], ttl: float, *, now: float) -> None:
    conn.executemany("INSERT OR REPLACE INTO revoked (id, expires_at) VALUES (?, ?)",
                     [(task_id, now + ttl) for task_id in ids])


def revoked(conn: sqlite3.Connection, *, now: float) -> list[str]:
    return [row[0] for row in conn.execute("SELECT id FROM revoked WHERE expires_at > ?",
                                           (now,))]


def scheduled(conn: sqlite3.Connection, queue: str, limit: int, *, now: float) -> list[Envelope]:
    """Delayed messages of ``queue`` whose ETA is ahead, earliest first (the delayed index)."""
    rows = conn.execute(
        "SELECT id, queue, body, content_type, priority, eta FROM messages"
        " WHERE state = ? AND queue = ? AND eta > ? ORDER BY eta LIMIT ?",
        (_DELAYED, queue, now, limit)).fetchall()
    return [Envelope(row[0], row[1], bytes(row[2]), row[3], row[4], row[5]) for row in rows]


def wake(conn: sqlite3.Connection, queue: str, ids: Sequence[str], *, now: float) -> int:
    """Make delayed messages ready now; they keep their ``seq`` (their place in the FIFO)."""
    marks = ", ".join("?" * len(ids))
    return conn.execute(
        f"UPDATE messages SET state = 0, eta = NULL WHERE state = ? AND queue = ?"
        f" AND id IN ({marks})", (_DELAYED, queue, *ids)).rowcount


def sweep(conn: sqlite3.Connection, now: float, limit: int) -> None:
    conn.execute("DELETE FROM revoked WHERE rowid IN (SELECT rowid FROM revoked"
                 " WHERE expires_at <= ? LIMIT ?)", (now, limit))
