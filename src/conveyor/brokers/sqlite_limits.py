"""The SQLite store's rate windows and concurrency-key slots: the steps of the reference
algorithms in :mod:`conveyor.brokers.memory_control`, in SQL, each operation run by the store
inside one ``IMMEDIATE`` transaction so every process sees it whole.

``rate_starts`` holds recent starts per window, ``rate_turns`` the turn of each waiting member;
``slot_holders`` the holders of each key with their lease expiry, ``slot_waiters`` the line
(``seq`` orders it) with each place's expiry, patience and whether it was woken.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

from .base import RateWindow, Waiter
from .memory_control import EPSILON, LEAST_WAIT

SCHEMA = """
CREATE TABLE IF NOT EXISTS rate_starts (
    key TEXT NOT NULL,
    at  REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS rate_starts_key ON rate_starts (key, at);
CREATE TABLE IF NOT EXISTS rate_turns (
    key    TEXT NOT NULL,
    member TEXT NOT NULL,
    at     REAL NOT NULL,
    PRIMARY KEY (key, member)
);
CREATE INDEX IF NOT EXISTS rate_turns_key ON rate_turns (key, at);
CREATE TABLE IF NOT EXISTS slot_holders (
    key    TEXT NOT NULL,
    holder TEXT NOT NULL,
    until  REAL NOT NULL,
    PRIMARY KEY (key, holder)
);
CREATE TABLE IF NOT EXISTS slot_waiters (
    key      TEXT NOT NULL,
    holder   TEXT NOT NULL,
    seq      INTEGER NOT NULL,
    queue    TEXT NOT NULL,
    until    REAL NOT NULL,
    patience REAL NOT NULL,
    woken    INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (key, holder)
);
CREATE INDEX IF NOT EXISTS slot_waiters_line ON slot_waiters (key, seq);
"""

#: Rate rows older than this are of no window any more (the longest unit is an hour).
_RATE_HORIZON = 86400.0


# -- rate windows ----------------------------------------------------------------------------

def acquire_rate(conn: sqlite3.Connection, windows: Sequence[RateWindow], member: str, *,
                 now: float) -> float:
    """See :meth:`RateLimiter.acquire_rate`; the caller holds a write transaction."""
    waits = []
    for window in windows:
        horizon = now - window.per
        conn.execute("DELETE FROM rate_starts WHERE key = ? AND at <= ?", (window.key, horizon))
        conn.execute("DELETE FROM rate_turns WHERE key = ? AND at <= ?", (window.key, horizon))
        waits.append(_rate_wait(conn, window, member, now))
    longest = max(waits, default=0.0)
    for window in windows:
        if longest <= 0:
            conn.execute("INSERT INTO rate_starts (key, at) VALUES (?, ?)", (window.key, now))
            conn.execute("DELETE FROM rate_turns WHERE key = ? AND member = ?",
                         (window.key, member))
        else:
            conn.execute("INSERT OR REPLACE INTO rate_turns (key, member, at) VALUES (?, ?, ?)",
                         (window.key, member, now + longest))
    return longest


def _rate_wait(conn: sqlite3.Connection, window: RateWindow, member: str, now: float) -> float:
    mine = conn.execute("SELECT at FROM rate_turns WHERE key = ? AND member = ?",
                        (window.key, member)).fetchone()
    if mine is not None and mine[0] > now + EPSILON:
        return float(mine[0]) - now
    if mine is not None:
        count, oldest = conn.execute("SELECT count(*), min(at) FROM rate_starts WHERE key = ?",
                                     (window.key,)).fetchone()
        return 0.0 if count < window.limit else max(oldest + window.per - now, LEAST_WAIT)
    nth = conn.execute(
        "SELECT at FROM (SELECT at FROM rate_starts WHERE key = ?"
        " UNION ALL SELECT at FROM rate_turns WHERE key = ?) ORDER BY at DESC LIMIT 1 OFFSET ?",
        (window.key, window.key, window.limit - 1)).fetchone()
    return 0.0 if nth is None else max(nth[0] + window.per - now, LEAST_WAIT)


# -- concurrency slots -----------------------------------------------------------------------

def acquire_slot(conn: sqlite3.Connection, key: str, limit: int, holder: str, lease: float,
                 waiter: Waiter, patience: float, *, now: float) -> tuple[bool, list[Waiter]]:
    """See :meth:`ConcurrencySlots.acquire_slot`; the caller holds a write transaction."""
    _expire(conn, key, now)
    if _granted(conn, key, limit, holder):
        conn.execute("INSERT OR REPLACE INTO slot_holders (key, holder, until) VALUES (?, ?, ?)",
                     (key, holder, now + lease))
        conn.execute("DELETE FROM slot_waiters WHERE key = ? AND holder = ?", (key, holder))
        return True, _wake(conn, key, limit, now)
    kept = conn.execute(
        "UPDATE slot_waiters SET until = ?, patience = ?, woken = 0, queue = ?"
        " WHERE key = ? AND holder = ?", (now + patience, patience, waiter.queue, key, holder))
    if not kept.rowcount:
        conn.execute(
            "INSERT INTO slot_waiters (key, holder, seq, queue, until, patience) VALUES"
            " (?, ?, (SELECT coalesce(max(seq), 0) + 1 FROM slot_waiters WHERE key = ?), ?, ?, ?)",
            (key, holder, key, waiter.queue, now + patience, patience))
    return False, _wake(conn, key, limit, now)


def _granted(conn: sqlite3.Connection, key: str, limit: int, holder: str) -> bool:
    """A holder keeps its slot; otherwise a free slot goes to the first in line."""
    if conn.execute("SELECT 1 FROM slot_holders WHERE key = ? AND holder = ?",
                    (key, holder)).fetchone():
        return True
    free = limit - _holders(conn, key)
    if free <= 0:
        return False
    place = conn.execute("SELECT seq FROM slot_waiters WHERE key = ? AND holder = ?",
                         (key, holder)).fetchone()
    if place is None:
        ahead = conn.execute("SELECT count(*) FROM slot_waiters WHERE key = ?", (key,))
    else:
        ahead = conn.execute("SELECT count(*) FROM slot_waiters WHERE key = ? AND seq < ?",
                             (key, place[0]))
    return int(ahead.fetchone()[0]) < free


def release_slot(conn: sqlite3.Connection, key: str, limit: int, holder: str, *,
                 now: float) -> list[Waiter]:
    _expire(conn, key, now)
    conn.execute("DELETE FROM slot_holders WHERE key = ? AND holder = ?", (key, holder))
    conn.execute("DELETE FROM slot_waiters WHERE key = ? AND holder = ?", (key, holder))
    return _wake(conn, key, limit, now)


def renew_slots(conn: sqlite3.Connection, held: Sequence[tuple[str, str]], lease: float, *,
                now: float) -> set[str]:
    lost = set()
    for key, holder in held:
        renewed = conn.execute("UPDATE slot_holders SET until = ? WHERE key = ? AND holder = ?"
                               " AND until > ?", (now + lease, key, holder, now))
        if not renewed.rowcount:
            lost.add(holder)
    return lost


def slot_woken(conn: sqlite3.Connection, key: str, holder: str, *, now: float) -> bool:
    row = conn.execute("SELECT woken FROM slot_waiters WHERE key = ? AND holder = ?"
                       " AND until > ?", (key, holder, now)).fetchone()
    return bool(row and row[0])


def _holders(conn: sqlite3.Connection, key: str) -> int:
    return int(conn.execute("SELECT count(*) FROM slot_holders WHERE key = ?",
                            (key,)).fetchone()[0])


def _expire(conn: sqlite3.Connection, key: str, now: float) -> None:
    conn.execute("DELETE FROM slot_holders WHERE key = ? AND until <= ?", (key, now))
    conn.execute("DELETE FROM slot_waiters WHERE key = ? AND until <= ?", (key, now))


def _wake(conn: sqlite3.Connection, key: str, limit: int, now: float) -> list[Waiter]:
    """Mark the first waiters, as many as there are free slots, woken (once each)."""
    free = limit - _holders(conn, key)
    if free <= 0:
        return []
    first = conn.execute("SELECT holder, queue, woken FROM slot_waiters WHERE key = ?"
                         " ORDER BY seq LIMIT ?", (key, free)).fetchall()
    woken = [Waiter(queue, holder) for holder, queue, was in first if not was]
    conn.executemany("UPDATE slot_waiters SET woken = 1, until = ? + patience"
                     " WHERE key = ? AND holder = ?", [(now, key, w.id) for w in woken])
    return woken


def sweep(conn: sqlite3.Connection, now: float, limit: int) -> None:
    """Drop a batch of rows no operation will look at again (keys nobody touches any more)."""
    for table in ("rate_starts", "rate_turns"):
        conn.execute(f"DELETE FROM {table} WHERE rowid IN (SELECT rowid FROM {table}"
                     " WHERE at < ? LIMIT ?)", (now - _RATE_HORIZON, limit))
    for table in ("slot_holders", "slot_waiters"):
        conn.execute(f"DELETE FROM {table} WHERE rowid IN (SELECT rowid FROM {table}"
                     " WHERE until <= ? LIMIT ?)", (now, limit))
