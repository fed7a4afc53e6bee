"""The SQLite store's coordination values: one table, each operation one statement or one short
write transaction, so concurrent processes see each change whole."""

from __future__ import annotations

import sqlite3

SCHEMA = """
CREATE TABLE IF NOT EXISTS kv (
    key        TEXT PRIMARY KEY,
    value      BLOB NOT NULL,
    expires_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS kv_expiry ON kv (expires_at);
"""


def get(conn: sqlite3.Connection, key: str, *, now: float) -> bytes | None:
    row = conn.execute("SELECT value FROM kv WHERE key = ? AND expires_at > ?",
                       (key, now)).fetchone()
    return None if row is None else bytes(row[0])


def ttl_left(conn: sqlite3.Connection, key: str, *, now: float) -> float | None:
    row = conn.execute("SELECT expires_at FROM kv WHERE key = ? AND expires_at > ?",
                       (key, now)).fetchone()
    return None if row is None else float(row[0]) - now


def put_if_absent(conn: sqlite3.Connection, key: str, value: bytes, ttl: float, *,
                  now: float) -> bytes | None:
    """Insert, or take over an expired row; else report what the live row holds."""
    row = conn.execute(
        "INSERT INTO kv (key, value, expires_at) VALUES (?, ?, ?) ON CONFLICT (key) DO UPDATE"
        " SET value = excluded.value, expires_at = excluded.expires_at"
        " WHERE kv.expires_at <= ? RETURNING 1", (key, value, now + ttl, now)).fetchone()
    if row is not None:
        return None
    held = get(conn, key, now=now)
    return held if held is not None else b""


def compare_and_set(conn: sqlite3.Connection, key: str, expected: bytes | None,
                    value: bytes | None, ttl: float, *, now: float) -> bool:
    """Run inside a write transaction (the caller's ``immediate``)."""
    if get(conn, key, now=now) != expected:
        return False
    if value is None:
        conn.execute("DELETE FROM kv WHERE key = ?", (key,))
    else:
        put(conn, key, value, ttl, now=now)
    return True


def put(conn: sqlite3.Connection, key: str, value: bytes, ttl: float, *, now: float) -> None:
    conn.execute("INSERT OR REPLACE INTO kv (key, value, expires_at) VALUES (?, ?, ?)",
                 (key, value, now + ttl))


def delete(conn: sqlite3.Connection, key: str, *, now: float) -> None:
    conn.execute("DELETE FROM kv WHERE key = ?", (key,))


def sweep(conn: sqlite3.Connection, now: float, limit: int) -> None:
    conn.execute("DELETE FROM kv WHERE rowid IN (SELECT rowid FROM kv WHERE expires_at <= ?"
                 " LIMIT ?)", (now, limit))
