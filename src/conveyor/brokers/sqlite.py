"""The embedded store: one SQLite file as broker and result backend for one machine.

``sqlite:///relative/path.db`` or ``sqlite:////absolute/path.db``; options in the query or as
keyword arguments of :func:`open_store`:

``synchronous``
    ``FULL`` (default: a commit survives power loss), ``EXTRA`` or ``NORMAL`` (a power cut may
    lose the last commits, never corrupt the file). ``OFF`` is refused.
``busy_timeout``
    Milliseconds a statement waits for another process's write lock (default 30000).
``doorbell``
    ``on`` (default) or ``off``: with it off, waiters poll instead of being woken.

Several processes may share the file. It runs in WAL mode so readers never block the one writer,
and every claim or settle is a single statement or one short ``IMMEDIATE`` transaction, so two
consumers can never hold the same message. Waiting consumers and result waiters sleep on a
doorbell of Unix datagram sockets in ``<db>.bell/`` (see :mod:`conveyor.brokers.doorbell`),
rung by the writer after each commit they care about.

A message row moves between four states; the partial index of each state keeps the hot queries
(claim the first ready message, find the next ETA or lease expiry) logarithmic in the backlog::

    (publish)                     READY, or DELAYED while its ETA is ahead
    READY    --claim-->           HELD (attempt + 1, fresh token, lease)
    HELD     --ack-->             deleted
    HELD     --retry-->           DELAYED (READY without delay), same row, back of the FIFO
    HELD     --dead_letter-->     DEAD --replay--> READY (attempt kept)
    HELD     --release/expiry-->  READY, keeping its place
    DELAYED  --ETA passed-->      READY

A delayed message becomes READY when a claim on its queue finds its ETA passed; a HELD one whose
lease ran out likewise, keeping its token until another consumer claims it (so a late settle from
the old holder still succeeds while nobody else has it).

Sync methods run their SQL in the calling thread, each thread with its own connection. Async
methods run the same functions in one dedicated worker thread of the store, so the event loop
never waits for the disk. A store belongs to the process that opened it: a forked or spawned child
calls :func:`open_store` itself.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import json
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Concatenate, ParamSpec, TypeVar
from urllib.parse import parse_qsl, unquote, urlsplit

from ..clock import SYSTEM, Clock, Deadline
from ..errors import BrokerError, BrokerUnavailable, ConfigurationError, LeaseLost
from ..events import Event, Retention
from ..handoff import Handoff
from . import sqlite_control as control_sql
from . import sqlite_events as events_sql
from . import sqlite_kv as kv_sql
from . import sqlite_limits as limits_sql
from .base import (
    UNTRACKED_START,
    Claim,
    ClaimBatch,
    ConcurrencySlots,
    ControlLog,
    Coordination,
    DeadLetter,
    DeadLetterAdmin,
    DelayedWake,
    Envelope,
    EventLog,
    PullBroker,
    QueueAdmin,
    QueueStats,
    RateLimiter,
    RateWindow,
    ResultBackend,
    ResultWrite,
    Revocations,
    Settle,
    StoredResult,
    Waiter,
)
from .doorbell import AsyncBell, Doorbell, Listener

P = ParamSpec("P")
T = TypeVar("T")

READY, DELAYED, HELD, DEAD = 0, 1, 2, 3
SCHEMA_VERSION = 2

#: Doorbell channels: consumers are rung on new due work, result waiters on final outcomes,
#: event followers on new events, workers on control commands.
CONSUMERS, RESULTS, EVENTS, CONTROL = "q", "r", "e", "c"

#: Longest a result waiter sleeps before looking again, in case a ring went astray.
_RESULT_RECHECK = 5.0
#: Poll interval when no doorbell is available.
_FALLBACK_POLL = 0.1
#: Seconds between sweeps of expired results and members.
_CLEANUP_EVERY = 60.0
_CLEANUP_BATCH = 1000
#: How many settled tokens a store remembers to make a repeated settle a no-op.
_REMEMBERED_TOKENS = 4096

_SYNCHRONOUS = ("NORMAL", "FULL", "EXTRA")
_SWITCH = {"on": True, "true": True, "1": True, "off": False, "false": False, "0": False}

_SCHEMA = """
CREATE TABLE IF NOT EXISTS messages (
    seq          INTEGER PRIMARY KEY,  -- FIFO order: new and retried rows get max(seq) + 1
    id           TEXT NOT NULL UNIQUE,
    queue        TEXT NOT NULL,
    body         BLOB NOT NULL,
    content_type TEXT NOT NULL,
    priority     INTEGER NOT NULL,
    eta          REAL,
    state        INTEGER NOT NULL,     -- 0 ready, 1 delayed, 2 held, 3 dead
    attempt      INTEGER NOT NULL DEFAULT 0,
    deliveries   INTEGER NOT NULL DEFAULT 0,  -- hand-outs since publish, retry or replay
    token        TEXT,
    lease_until  REAL,
    reason       TEXT,
    failed_at    REAL
);
CREATE INDEX IF NOT EXISTS messages_ready ON messages (queue, priority DESC, seq) WHERE state = 0;
CREATE INDEX IF NOT EXISTS messages_delayed ON messages (queue, eta) WHERE state = 1;
CREATE INDEX IF NOT EXISTS messages_held ON messages (queue, lease_until) WHERE state = 2;
CREATE INDEX IF NOT EXISTS messages_dead ON messages (queue, failed_at) WHERE state = 3;
CREATE TABLE IF NOT EXISTS results (
    task_id    TEXT PRIMARY KEY,
    data       BLOB NOT NULL,
    state      TEXT NOT NULL,
    attempt    INTEGER NOT NULL,
    final      INTEGER NOT NULL,
    expires_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS results_expiry ON results (expires_at);
CREATE TABLE IF NOT EXISTS members (
    key        TEXT NOT NULL,
    member     TEXT NOT NULL,
    expires_at REAL NOT NULL,
    PRIMARY KEY (key, member)
);
CREATE INDEX IF NOT EXISTS members_expiry ON members (expires_at);
"""


# -- opening ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Settings:
    """Where the database is and how connections to it are set up."""

    path: str
    synchronous: str = "FULL"
    busy_timeout: float = 30.0
    doorbell: bool = True


def open_store(url: str, *, clock: Clock = SYSTEM, **options: Any) -> SQLiteStore:
    """Open (creating if needed) the SQLite store of ``url``; see the module docstring."""
    return SQLiteStore(url, parse_url(url, **options), clock)


def parse_url(url: str, **options: Any) -> Settings:
    """Settings from ``url`` and ``options`` (keyword options win over the query string)."""
    parts = urlsplit(url)
    if parts.scheme.lower() != "sqlite" or parts.netloc or len(parts.path) < 2:
        raise ConfigurationError(
            f"bad SQLite store URL {url!r}; use sqlite:///relative.db or sqlite:////abs/path.db"
        )
    path = os.path.realpath(unquote(parts.path[1:]))
    given: dict[str, Any] = dict(parse_qsl(parts.query)) | options
    unknown = set(given) - {"synchronous", "busy_timeout", "doorbell"}
    if unknown:
        raise ConfigurationError(f"unknown SQLite store option(s) {sorted(unknown)} in {url!r}")
    return Settings(
        path=path,
        synchronous=_synchronous(given.get("synchronous", "FULL")),
        busy_timeout=_milliseconds(given.get("busy_timeout", 30000)) / 1000,
        doorbell=_switch(given.get("doorbell", True)),
    )


def _synchronous(value: object) -> str:
    mode = str(value).upper()
    if mode == "OFF":
        raise ConfigurationError(
            "synchronous=OFF can lose or corrupt committed messages on a crash; use NORMAL or FULL"
        )
    if mode not in _SYNCHRONOUS:
        raise ConfigurationError(f"synchronous must be one of {', '.join(_SYNCHRONOUS)}")
    return mode


def _milliseconds(value: object) -> float:
    try:
        number = float(str(value))
    except ValueError:
        raise ConfigurationError(f"busy_timeout must be milliseconds, not {value!r}") from None
    if number < 0:
        raise ConfigurationError("busy_timeout must not be negative")
    return number


def _switch(value: object) -> bool:
    if isinstance(value, bool):
        return value
    found = _SWITCH.get(str(value).lower())
    if found is None:
        raise ConfigurationError(f"doorbell must be on or off, not {value!r}")
    return found


# -- connections ------------------------------------------------------------------------------


class Connections:
    """One connection per thread (sqlite3 objects must stay in their thread), closed together.

    Connections are opened with ``check_same_thread=False`` only so that :meth:`close_all` may
    close them from the closing thread; each is otherwise used by its own thread alone.
    """

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._local = threading.local()
        self._lock = threading.Lock()
        self._open: list[tuple[threading.Thread, sqlite3.Connection]] = []

    def get(self) -> sqlite3.Connection:
        """This thread's connection, opened on first use."""
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._connect()
            self._local.conn = conn
            self._register(conn)
        return conn

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(
            self._settings.path,
            timeout=self._settings.busy_timeout,
            isolation_level=None,  # autocommit; transactions are explicit BEGIN IMMEDIATE
            check_same_thread=False,
            cached_statements=256,
        )
        conn.execute(f"PRAGMA synchronous={self._settings.synchronous}")
        return conn

    def _register(self, conn: sqlite3.Connection) -> None:
        with self._lock:
            # Threads come and go (asyncio.to_thread, pools): close what dead threads left.
            for thread, old in self._open:
                if not thread.is_alive():
                    old.close()
            self._open = [(t, c) for t, c in self._open if t.is_alive()]
            self._open.append((threading.current_thread(), conn))

    def close_all(self) -> None:
        """Close every connection. No thread may use the store any more."""
        with self._lock:
            for _, conn in self._open:
                with contextlib.suppress(sqlite3.Error):
                    conn.close()
            self._open = []


@contextlib.contextmanager
def immediate(conn: sqlite3.Connection) -> Iterator[None]:
    """A write transaction that takes the write lock up front, so it never deadlocks midway."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    try:
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


@contextlib.contextmanager
def lease_bookkeeping(conn: sqlite3.Connection) -> Iterator[None]:
    """Commit without waiting for the disk (``synchronous=NORMAL``) inside this block.

    For claims and lease renewals only: losing one to a power cut just makes the message due
    again, which at-least-once delivery allows, and every held message is redelivered after a
    power cut anyway because its consumer died with the machine. The next full-sync commit (a
    publish, settle or result) flushes these along with itself. This keeps an fsync off the
    path from publish to consumer.
    """
    level = conn.execute("PRAGMA synchronous").fetchone()[0]
    if level <= 1:
        yield
        return
    conn.execute("PRAGMA synchronous=NORMAL")
    try:
        yield
    finally:
        conn.execute(f"PRAGMA synchronous={level}")


def init_schema(conn: sqlite3.Connection, path: str) -> None:
    """Switch the file to WAL and create the tables. Idempotent; safe to race with others."""
    mode = _to_wal(conn)
    if str(mode).lower() != "wal":
        raise ConfigurationError(
            f"{path}: the file system does not support SQLite WAL mode (got {mode!r}); put the"
            " database on a local disk"
        )
    with immediate(conn):
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise ConfigurationError(
                f"{path} was written by a newer Conveyor (layout {version}); upgrade to open it"
            )
        if version == 1:  # layout 2 added the delivery count
            conn.execute("ALTER TABLE messages ADD COLUMN deliveries INTEGER NOT NULL DEFAULT 0")
        schema = (_SCHEMA + events_sql.SCHEMA + kv_sql.SCHEMA + control_sql.SCHEMA
                  + limits_sql.SCHEMA)
        for statement in schema.split(";"):
            if statement.strip():
                conn.execute(statement)
        conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")


def _to_wal(conn: sqlite3.Connection, attempts: int = 50) -> str:
    """``PRAGMA journal_mode=WAL``, retried: on a new file it needs the database to itself and
    SQLite's busy timeout does not cover it, so processes opening the file together (a pool's
    children starting at once) would otherwise fail with "database is locked"."""
    for attempt in range(attempts):
        try:
            return str(conn.execute("PRAGMA journal_mode=WAL").fetchone()[0])
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or attempt == attempts - 1:
                raise
            time.sleep(0.02 * (attempt + 1))
    raise AssertionError("unreachable")


# -- the SQL: one function per operation, shared by the sync and async paths --------------------

_COLUMNS = "seq, id, queue, body, content_type, priority, eta"

_PUBLISH = """
INSERT INTO messages (seq, id, queue, body, content_type, priority, eta, state)
VALUES ((SELECT coalesce(max(seq), 0) + 1 FROM messages), ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (id) DO NOTHING
"""


def publish_rows(conn: sqlite3.Connection, envelopes: Sequence[Envelope],
                 records: Sequence[tuple[str, StoredResult]] = (), ttl: float = 0.0, *,
                 now: float) -> None:
    """Insert all envelopes, and store ``records`` under the fencing rule, in one transaction.

    Publishing an id that is already stored (queued, delayed, held or dead) leaves the stored
    message as it is, as on Redis: a publish retried after an error, or the same id sent by two
    producers at once, is one job, and a held message keeps its holder's lease.
    """
    rows = [
        (e.id, e.queue, bytes(e.body), e.content_type, e.priority, e.eta,
         DELAYED if e.eta is not None and e.eta > now else READY)
        for e in envelopes
    ]
    with immediate(conn):
        conn.executemany(_PUBLISH, rows)
        if records:  # the fencing rule of store_result, for many rows in one statement
            conn.executemany(_STORE_MANY, [
                (task_id, bytes(r.data), r.state, r.attempt, int(r.final), now + ttl, now)
                for task_id, r in records])


def _marks(n: int) -> str:
    return ", ".join("?" * n)


def _claim_sql(n: int) -> str:
    """Claim the first ``limit`` ready rows of ``n`` queues by priority, queue rank, then seq.

    Each queue's arm walks its partial index and stops after ``limit`` rows, so the cost does not
    grow with the backlog. ``randomblob`` is evaluated per row: every claim gets its own token.
    """
    arms = " UNION ALL ".join(
        "SELECT * FROM (SELECT seq, priority, ? AS rank FROM messages"
        " WHERE state = 0 AND queue = ? ORDER BY priority DESC, seq LIMIT ?)"
        for _ in range(n)
    )
    return (
        "UPDATE messages SET state = 2, attempt = attempt + 1, deliveries = deliveries + 1,"
        " token = lower(hex(randomblob(16))), lease_until = ?"
        f" WHERE seq IN (SELECT seq FROM ({arms}) ORDER BY priority DESC, rank, seq LIMIT ?)"
        f" RETURNING {_COLUMNS}, attempt, token, deliveries"
    )


def _next_sql(n: int) -> str:
    """The earliest ETA of a delayed row or lease expiry of a held row on ``n`` queues."""
    arms = " UNION ALL ".join(
        "SELECT (SELECT min(eta) FROM messages WHERE state = 1 AND queue = ?) AS t"
        " UNION ALL SELECT (SELECT min(lease_until) FROM messages WHERE state = 2 AND queue = ?)"
        for _ in range(n)
    )
    return f"SELECT min(t) FROM ({arms})"


def claim_rows(
    conn: sqlite3.Connection, queues: Sequence[str], limit: int, lease: float, *, now: float
) -> tuple[list[Claim], float | None]:
    """Make due rows ready, claim up to ``limit`` of them, and find when more may be due."""
    with lease_bookkeeping(conn), immediate(conn):
        return claim_in(conn, queues, limit, lease, now=now)


def claim_in(
    conn: sqlite3.Connection, queues: Sequence[str], limit: int, lease: float, *, now: float
) -> tuple[list[Claim], float | None]:
    """:func:`claim_rows` inside the caller's write transaction."""
    names = list(dict.fromkeys(queues))
    if not names or limit < 1:
        return [], None
    rank = {q: i for i, q in enumerate(names)}
    n = len(names)
    conn.execute(
        f"UPDATE messages SET state = 0 WHERE state = 1 AND queue IN ({_marks(n)})"
        " AND eta <= ?", (*names, now))
    conn.execute(
        f"UPDATE messages SET state = 0 WHERE state = 2 AND queue IN ({_marks(n)})"
        " AND lease_until <= ?", (*names, now))
    params: list[object] = [now + lease]
    for name in names:
        params += [rank[name], name, limit]
    rows = conn.execute(_claim_sql(n), (*params, limit)).fetchall()
    next_at = conn.execute(_next_sql(n), [q for q in names for _ in (0, 1)]).fetchone()[0]
    # RETURNING yields rows in no particular order; hand them out in claim order.
    rows.sort(key=lambda r: (-r[5], rank[r[2]], r[0]))
    return [Claim(_envelope(row), row[7], row[8], row[9]) for row in rows], next_at


_MARK_STARTED = """
UPDATE results SET state = 'STARTED', attempt = ?, data = x''
WHERE task_id = ? AND expires_at > ? AND NOT final AND attempt <= ? AND data != ?
"""


def mark_started(conn: sqlite3.Connection, claims: Sequence[Claim], *,
                 now: float) -> list[Claim]:
    """Record STARTED for the claimed tasks that track it (inside the claim's transaction) and
    report each one's record state, so a worker skips tasks that already ended."""
    if not claims:
        return []
    conn.executemany(_MARK_STARTED, [(c.attempt, c.envelope.id, now, c.attempt, UNTRACKED_START)
                                     for c in claims])
    states = dict(conn.execute(
        "SELECT r.task_id, r.state FROM json_each(?) AS j JOIN results AS r"
        " ON r.task_id = j.value WHERE r.expires_at > ?",
        (json.dumps([c.envelope.id for c in claims]), now)).fetchall())
    return [dataclasses.replace(c, record=states.get(c.envelope.id, "")) for c in claims]


def settle_row(conn: sqlite3.Connection, settle: Settle, *, now: float) -> bool:
    """Run one fenced settle and store its result (if any) when it matched."""
    claim = settle.claim
    if settle.kind == "ack":
        matched = ack_row(conn, claim, now=now)
    elif settle.kind == "retry":
        matched = retry_row(conn, claim, settle.delay, settle.body, settle.keep_count, now=now)
    elif settle.kind == "dead":
        matched = dead_row(conn, claim, settle.reason, now=now)
    else:
        matched = release_row(conn, claim, now=now)
    if matched and settle.result is not None:
        result = settle.result
        store_result(conn, result.task_id, result.record, result.ttl, now=now)
    return matched


def _envelope(row: Sequence[Any]) -> Envelope:
    """An envelope from the leading ``_COLUMNS`` of a row."""
    return Envelope(id=row[1], queue=row[2], body=bytes(row[3]), content_type=row[4],
                    priority=row[5], eta=row[6])


_ACK = "DELETE FROM messages WHERE id = ? AND token = ? RETURNING seq"
_RETRY = """
UPDATE messages SET body = coalesce(?, body), eta = ?, state = ?, token = NULL,
    lease_until = NULL, deliveries = CASE WHEN ? THEN max(deliveries - 1, 0) ELSE 0 END,
    seq = (SELECT max(seq) FROM messages) + 1
WHERE id = ? AND token = ? RETURNING seq
"""
_DEAD = """
UPDATE messages SET state = 3, reason = ?, failed_at = ?, token = NULL, lease_until = NULL
WHERE id = ? AND token = ? RETURNING seq
"""
_RELEASE = """
UPDATE messages SET state = 0, token = NULL, lease_until = NULL,
    deliveries = max(deliveries - 1, 0)
WHERE id = ? AND token = ? RETURNING seq
"""


def ack_row(conn: sqlite3.Connection, claim: Claim, *, now: float) -> bool:
    """Delete the row if ``claim`` still holds it; False if its token no longer matches."""
    return _fenced(conn, _ACK, (), claim)


def retry_row(conn: sqlite3.Connection, claim: Claim, delay: float, body: bytes | None,
              keep_count: bool = False, *, now: float) -> bool:
    """In one statement: new body, hidden until ``now + delay``, lease cleared, back of FIFO."""
    eta = now + delay
    state = DELAYED if delay > 0 else READY
    blob = None if body is None else bytes(body)
    return _fenced(conn, _RETRY, (blob, eta, state, keep_count), claim)


def dead_row(conn: sqlite3.Connection, claim: Claim, reason: str, *, now: float) -> bool:
    """Mark the row dead with ``reason``; dead rows are never claimed."""
    return _fenced(conn, _DEAD, (reason, now), claim)


def release_row(conn: sqlite3.Connection, claim: Claim, *, now: float) -> bool:
    """Clear the lease so the row is due at once, keeping its place in the queue."""
    return _fenced(conn, _RELEASE, (), claim)


def release_rows(conn: sqlite3.Connection, claims: Sequence[Claim]) -> None:
    """Give back claims nobody will see (their claimer was cancelled)."""
    with immediate(conn):
        conn.executemany(_RELEASE.replace("RETURNING seq", ""),
                         [(c.envelope.id, c.token) for c in claims])


def _fenced(conn: sqlite3.Connection, sql: str, head: tuple[object, ...], claim: Claim) -> bool:
    """Run a settle statement that matches only while ``claim.token`` is the row's token."""
    params = (*head, claim.envelope.id, claim.token)
    return conn.execute(sql, params).fetchone() is not None


def renew_rows(conn: sqlite3.Connection, claims: Sequence[Claim], lease: float, *,
               now: float) -> set[str]:
    """Extend the leases of ``claims`` in one statement; the tokens no longer held come back."""
    if not claims:
        return set()
    with lease_bookkeeping(conn):
        renewed = conn.execute(
            "UPDATE messages SET state = 2, lease_until = ?"
            " WHERE id IN (SELECT value FROM json_each(?))"
            " AND token IN (SELECT value FROM json_each(?)) RETURNING token",
            (now + lease, json.dumps([c.envelope.id for c in claims]),
             json.dumps([c.token for c in claims])),
        ).fetchall()
    return {c.token for c in claims} - {row[0] for row in renewed}


_STATS = """
SELECT
    (SELECT count(*) FROM messages WHERE state = 0 AND queue = :q)
  + (SELECT count(*) FROM messages WHERE state = 1 AND queue = :q AND eta <= :now)
  + (SELECT count(*) FROM messages WHERE state = 2 AND queue = :q AND lease_until <= :now),
    (SELECT count(*) FROM messages WHERE state = 2 AND queue = :q AND lease_until > :now),
    (SELECT count(*) FROM messages WHERE state = 1 AND queue = :q AND eta > :now),
    (SELECT count(*) FROM messages WHERE state = 3 AND queue = :q)
"""


def queue_stats(conn: sqlite3.Connection, queue: str, *, now: float) -> QueueStats:
    """Counts as of now: an expired lease counts as ready, a passed ETA as ready."""
    ready, held, delayed, dead = conn.execute(_STATS, {"q": queue, "now": now}).fetchone()
    return QueueStats(queue, ready, held, delayed, dead)


def queue_names(conn: sqlite3.Connection) -> list[str]:
    """Every queue with a row in any state (each state's index is read, not the table)."""
    arms = " UNION ".join(f"SELECT queue FROM messages WHERE state = {s}"
                          for s in (READY, DELAYED, HELD, DEAD))
    return [row[0] for row in conn.execute(f"{arms} ORDER BY 1")]


def purge_rows(conn: sqlite3.Connection, queue: str, *, now: float) -> int:
    """Delete what :func:`queue_stats` counts as ready or delayed."""
    cursor = conn.execute(
        "DELETE FROM messages WHERE queue = ? AND"
        " (state IN (0, 1) OR (state = 2 AND lease_until <= ?))", (queue, now))
    return cursor.rowcount


def _dead_filter(queue: str | None, ids: Sequence[str] | None = None) -> tuple[str, list[object]]:
    where = "state = 3"
    params: list[object] = []
    if queue is not None:
        where += " AND queue = ?"
        params.append(queue)
    if ids is not None:
        where += " AND id IN (SELECT value FROM json_each(?))"
        params.append(json.dumps(list(ids)))
    return where, params


def dead_rows(conn: sqlite3.Connection, queue: str | None, limit: int) -> list[DeadLetter]:
    """Dead letters, oldest failure first."""
    where, params = _dead_filter(queue)
    rows = conn.execute(
        f"SELECT {_COLUMNS}, reason, failed_at FROM messages WHERE {where}"
        " ORDER BY failed_at, seq LIMIT ?", (*params, limit)).fetchall()
    return [DeadLetter(_envelope(row), row[7] or "", row[8]) for row in rows]


def replay_rows(conn: sqlite3.Connection, ids: Sequence[str] | None, queue: str | None) -> int:
    """Make the chosen dead rows ready again at the back of their queues, attempt kept."""
    where, params = _dead_filter(queue, ids)
    with immediate(conn):
        chosen = [row[0] for row in conn.execute(
            f"SELECT seq FROM messages WHERE {where} ORDER BY failed_at, seq", params)]
        top = conn.execute("SELECT coalesce(max(seq), 0) FROM messages").fetchone()[0]
        conn.executemany(
            "UPDATE messages SET seq = ?, state = 0, eta = NULL, reason = NULL, failed_at = NULL,"
            " deliveries = 0"
            " WHERE seq = ?", [(top + i, seq) for i, seq in enumerate(chosen, 1)])
    return len(chosen)


def purge_dead_rows(conn: sqlite3.Connection, queue: str | None) -> int:
    """Delete dead letters of one queue or all."""
    where, params = _dead_filter(queue)
    return conn.execute(f"DELETE FROM messages WHERE {where}", params).rowcount


_STORE = """
INSERT INTO results (task_id, data, state, attempt, final, expires_at) VALUES (?, ?, ?, ?, ?, ?)
ON CONFLICT (task_id) DO UPDATE SET
    data = excluded.data, state = excluded.state, attempt = excluded.attempt,
    final = excluded.final, expires_at = excluded.expires_at
WHERE results.expires_at <= ? OR (NOT results.final AND results.attempt <= excluded.attempt)
RETURNING 1
"""


#: :data:`_STORE` without its RETURNING (executemany takes no statement that returns rows).
_STORE_MANY = _STORE.replace("RETURNING 1", "")


def store_result(conn: sqlite3.Connection, task_id: str, record: StoredResult, ttl: float, *,
                 now: float) -> bool:
    """The fencing rule in one statement: an expired row counts as absent."""
    row = conn.execute(_STORE, (task_id, bytes(record.data), record.state, record.attempt,
                                int(record.final), now + ttl, now)).fetchone()
    return row is not None


def load_results(conn: sqlite3.Connection, task_ids: Sequence[str], *,
                 now: float) -> list[StoredResult | None]:
    """Unexpired records of ``task_ids``, in order, in one query."""
    found: list[StoredResult | None] = [None] * len(task_ids)
    if not task_ids:
        return found
    rows = conn.execute(
        "SELECT j.key, r.data, r.state, r.attempt, r.final FROM json_each(?) AS j"
        " JOIN results AS r ON r.task_id = j.value WHERE r.expires_at > ?",
        (json.dumps(list(task_ids)), now))
    for index, data, state, attempt, final in rows:
        found[index] = StoredResult(bytes(data), state, attempt, bool(final))
    return found


def forget_result(conn: sqlite3.Connection, task_id: str) -> None:
    """Delete one record."""
    conn.execute("DELETE FROM results WHERE task_id = ?", (task_id,))


def add_member(conn: sqlite3.Connection, key: str, member: str, ttl: float, *, now: float) -> int:
    """Add once and count, in one transaction so exactly one adder sees the full count."""
    with immediate(conn):
        conn.execute(
            "INSERT INTO members (key, member, expires_at) VALUES (?, ?, ?)"
            " ON CONFLICT (key, member) DO UPDATE SET expires_at = excluded.expires_at",
            (key, member, now + ttl))
        count: int = conn.execute(
            "SELECT count(*) FROM members WHERE key = ? AND expires_at > ?", (key, now)
        ).fetchone()[0]
    return count


def sweep_expired(conn: sqlite3.Connection, *, now: float) -> None:
    """Delete a batch of expired results and members (they are already invisible)."""
    conn.execute("DELETE FROM results WHERE rowid IN (SELECT rowid FROM results"
                 " WHERE expires_at <= ? LIMIT ?)", (now, _CLEANUP_BATCH))
    conn.execute("DELETE FROM members WHERE rowid IN (SELECT rowid FROM members"
                 " WHERE expires_at <= ? LIMIT ?)", (now, _CLEANUP_BATCH))


# -- errors -----------------------------------------------------------------------------------

#: Primary result codes that mean "cannot use the file now", as opposed to a bad request.
_UNAVAILABLE = {
    5,   # SQLITE_BUSY: another process held the write lock past busy_timeout
    6,   # SQLITE_LOCKED
    8,   # SQLITE_READONLY
    10,  # SQLITE_IOERR
    13,  # SQLITE_FULL
    14,  # SQLITE_CANTOPEN
    15,  # SQLITE_PROTOCOL
}


def convert_error(exc: sqlite3.Error, path: str) -> BrokerError:
    """The Conveyor error for a driver error on the database at ``path``."""
    code = getattr(exc, "sqlite_errorcode", None)
    unavailable = code is not None and code & 0xFF in _UNAVAILABLE
    kind = BrokerUnavailable if unavailable else BrokerError
    return kind(f"SQLite store {path}: {exc}")


# -- the store --------------------------------------------------------------------------------


class SQLiteStore(PullBroker, QueueAdmin, DeadLetterAdmin, ResultBackend, EventLog,
                  Coordination, ControlLog, Revocations, RateLimiter, ConcurrencySlots,
                  DelayedWake):
    """Broker and result backend in one SQLite file; see the module docstring."""

    def __init__(self, url: str, settings: Settings, clock: Clock = SYSTEM) -> None:
        self.url = url
        self.clock = clock
        self.path = settings.path
        self._pid = os.getpid()
        self._closed = False
        self._doorbell: Doorbell | None = None
        self._conns = Connections(settings)
        self._executor = Handoff(1, "conveyor-sqlite")
        self._bells: dict[tuple[asyncio.AbstractEventLoop, str], AsyncBell] = {}
        self._bells_lock = threading.Lock()
        self._settled: collections.OrderedDict[str, None] = collections.OrderedDict()
        self._last_sweep = 0.0
        try:
            os.makedirs(os.path.dirname(self.path), exist_ok=True)
            self._call(init_schema, self.path)
        except OSError as exc:
            self.close()
            raise BrokerUnavailable(f"SQLite store {self.path}: {exc}") from exc
        except BaseException:
            self.close()
            raise
        self._doorbell = self._open_doorbell(settings)

    def _open_doorbell(self, settings: Settings) -> Doorbell | None:
        if not settings.doorbell:
            return None
        try:
            return Doorbell(f"{self.path}.bell")
        except OSError:
            return None  # waiters poll instead

    def __repr__(self) -> str:
        return f"SQLiteStore({self.url!r})"

    # -- running SQL ------------------------------------------------------------------------
    def _call(
        self, op: Callable[Concatenate[sqlite3.Connection, P], T], *args: P.args,
        **kwargs: P.kwargs,
    ) -> T:
        """Run ``op`` in the calling thread, with that thread's connection."""
        self._check_usable()
        return self._execute(op, *args, **kwargs)

    async def _acall(
        self, op: Callable[Concatenate[sqlite3.Connection, P], T], *args: P.args,
        **kwargs: P.kwargs,
    ) -> T:
        """Run ``op`` in the store's worker thread so the event loop never waits on the disk."""
        self._check_usable()
        return await self._executor.call(lambda: self._execute(op, *args, **kwargs))

    def _execute(
        self, op: Callable[Concatenate[sqlite3.Connection, P], T], *args: P.args,
        **kwargs: P.kwargs,
    ) -> T:
        """Run ``op`` with this thread's connection, converting driver errors.

        Does not refuse a closed store: ``close`` lets the worker thread finish what was queued
        before it closes the connections.
        """
        try:
            return op(self._conns.get(), *args, **kwargs)
        except sqlite3.Error as exc:
            raise convert_error(exc, self.path) from exc

    def _check_usable(self) -> None:
        if self._closed:
            raise BrokerError(f"SQLite store {self.path} is closed")
        if os.getpid() != self._pid:
            raise BrokerError(
                f"SQLite store {self.path} was opened in process {self._pid}; call open_store"
                " again in this process"
            )

    # -- doorbell ---------------------------------------------------------------------------
    def _ring(self, channel: str) -> None:
        if self._doorbell is not None:
            self._doorbell.ring(channel)

    def _async_bell(self, channel: str) -> AsyncBell | None:
        """This loop's listener on ``channel``, bound on first use and kept until close."""
        if self._doorbell is None or self._closed:
            return None
        loop = asyncio.get_running_loop()
        with self._bells_lock:
            bell = self._bells.get((loop, channel))
            if bell is None:
                self._forget_closed_loops()
                try:
                    bell = AsyncBell(self._doorbell, channel, loop)
                except OSError:
                    return None
                self._bells[(loop, channel)] = bell
        return bell

    def _forget_closed_loops(self) -> None:
        for key, bell in list(self._bells.items()):
            if key[0].is_closed():
                bell.close()
                del self._bells[key]

    def _listener(self, channel: str) -> Listener | None:
        if self._doorbell is None:
            return None
        try:
            return self._doorbell.listen(channel)
        except OSError:
            return None

    # -- producer ---------------------------------------------------------------------------
    def _publish(self, conn: sqlite3.Connection, envelopes: Sequence[Envelope],
                 records: Sequence[tuple[str, StoredResult]] = (), ttl: float = 0.0) -> None:
        if envelopes:
            publish_rows(conn, envelopes, records, ttl, now=self.clock.time())
            self._ring(CONSUMERS)

    def publish(self, envelopes: Sequence[Envelope]) -> None:
        self._call(self._publish, envelopes)

    async def apublish(self, envelopes: Sequence[Envelope]) -> None:
        await self._acall(self._publish, envelopes)

    def publish_tracked(self, envelopes: Sequence[Envelope],
                        records: Sequence[tuple[str, StoredResult]], ttl: float) -> None:
        """Messages and their PENDING records in one transaction: one commit, one fsync."""
        self._call(self._publish, envelopes, records, ttl)

    async def apublish_tracked(self, envelopes: Sequence[Envelope],
                               records: Sequence[tuple[str, StoredResult]], ttl: float) -> None:
        await self._acall(self._publish, envelopes, records, ttl)

    # -- consumer primitives ----------------------------------------------------------------
    async def _claim(
        self, queues: Sequence[str], limit: int, lease: float
    ) -> tuple[list[Claim], float | None]:
        bell = self._async_bell(CONSUMERS)
        # Read before the query: a ring after this point makes the next _wait return at once.
        seen = bell.generation if bell is not None else 0
        job = asyncio.ensure_future(self._acall(claim_rows, list(queues), limit, lease,
                                                 now=self.clock.time()))
        try:
            claims, next_at = await asyncio.shield(job)
        except asyncio.CancelledError:
            # The claim may still commit; nobody would see those claims, so give them back.
            job.add_done_callback(self._give_back)
            raise
        if not claims and bell is not None:
            bell.mark(tuple(queues), seen)
        return claims, next_at

    async def _claim_batch(self, queues: Sequence[str], limit: int, lease: float, *,
                           settles: Sequence[Settle] = (),
                           record_started: bool = False) -> ClaimBatch:
        """Settles, the claim and the STARTED records in one transaction: one commit per
        finished task. (Cancellation is the consumer's to handle: it shields this call.)"""
        bell = self._async_bell(CONSUMERS)
        seen = bell.generation if bell is not None else 0
        batch = await self._acall(self._step, list(settles), list(queues), limit, lease,
                                  record_started)
        if limit and not batch.claims and bell is not None:
            bell.mark(tuple(queues), seen)
        return batch

    def _step(self, conn: sqlite3.Connection, settles: list[Settle], queues: list[str],
              limit: int, lease: float, record_started: bool) -> ClaimBatch:
        now = self.clock.time()
        # A step that stores outcomes waits for the disk; a bare claim need not (see
        # lease_bookkeeping).
        durable = any(s.result is not None or s.kind != "release" for s in settles)
        with contextlib.nullcontext() if durable else lease_bookkeeping(conn), immediate(conn):
            matched = [settle_row(conn, settle, now=now) for settle in settles]
            claims, next_at = claim_in(conn, queues, limit, lease, now=now)
            if record_started:
                claims = mark_started(conn, claims, now=now)
        self._after_step(settles, matched)
        return ClaimBatch(claims, next_at, [self._fenced(s, m) for s, m in zip(
            settles, matched, strict=True)])

    def _after_step(self, settles: list[Settle], matched: list[bool]) -> None:
        for settle, ok in zip(settles, matched, strict=True):
            if ok:
                self._remember(settle.claim.token)
        if any(ok and s.kind in ("retry", "release") for s, ok in zip(settles, matched,
                                                                       strict=True)):
            self._ring(CONSUMERS)
        if any(ok and s.result is not None and s.result.record.final
               for s, ok in zip(settles, matched, strict=True)):
            self._ring(RESULTS)

    def _fenced(self, settle: Settle, matched: bool) -> LeaseLost | None:
        if matched or settle.claim.token in self._settled:
            return None
        return LeaseLost(f"lease of message {settle.claim.envelope.id} passed to another"
                         f" consumer ({self.path})")

    def _give_back(self, job: asyncio.Future[tuple[list[Claim], float | None]]) -> None:
        if job.cancelled() or job.exception() is not None or self._closed:
            return
        claims = job.result()[0]
        if claims:
            with contextlib.suppress(RuntimeError):  # the store closed meanwhile
                self._executor.run_soon(lambda: self._execute(self._release_orphans, claims))

    def _release_orphans(self, conn: sqlite3.Connection, claims: Sequence[Claim]) -> None:
        release_rows(conn, claims)
        self._ring(CONSUMERS)

    async def _wait(self, queues: Sequence[str], timeout: float) -> None:
        bell = self._async_bell(CONSUMERS)
        if bell is None:
            await asyncio.sleep(min(timeout, _FALLBACK_POLL))
            return
        await bell.wait(bell.take_mark(tuple(queues)), timeout)

    def _settle(
        self, conn: sqlite3.Connection, op: Callable[..., bool], claim: Claim, *args: Any,
        ring: bool = False,
    ) -> None:
        """Run a fenced settle. LeaseLost unless it matched or this store settled it already."""
        if op(conn, claim, *args, now=self.clock.time()):
            self._remember(claim.token)
            if ring:
                self._ring(CONSUMERS)
        elif claim.token not in self._settled:
            raise LeaseLost(
                f"lease of message {claim.envelope.id} passed to another consumer ({self.path})"
            )

    def _remember(self, token: str) -> None:
        # Only the worker thread settles, so this needs no lock.
        self._settled[token] = None
        while len(self._settled) > _REMEMBERED_TOKENS:
            self._settled.popitem(last=False)

    def _settle_storing(
        self, conn: sqlite3.Connection, op: Callable[..., bool], claim: Claim, *args: Any,
        result: ResultWrite, ring: bool = False,
    ) -> None:
        """A fenced settle and its result in one transaction: both or neither are written."""
        with immediate(conn):
            now = self.clock.time()
            matched = op(conn, claim, *args, now=now)
            if not matched and claim.token not in self._settled:
                raise LeaseLost(
                    f"lease of message {claim.envelope.id} passed to another consumer"
                    f" ({self.path})")
            written = matched and store_result(conn, result.task_id, result.record, result.ttl,
                                               now=now)
        if matched:
            self._remember(claim.token)
        if ring:
            self._ring(CONSUMERS)
        if written and result.record.final:
            self._ring(RESULTS)

    async def _settle_ack(self, claim: Claim) -> None:
        await self._acall(self._settle, ack_row, claim)

    async def _settle_ack_storing(self, claim: Claim, result: ResultWrite) -> None:
        await self._acall(self._settle_storing, ack_row, claim, result=result)

    async def _settle_retry_storing(self, claim: Claim, delay: float, body: bytes | None,
                                    result: ResultWrite, keep_count: bool = False) -> None:
        await self._acall(self._settle_storing, retry_row, claim, delay, body, keep_count,
                          result=result, ring=True)

    async def _settle_dead_storing(self, claim: Claim, reason: str, result: ResultWrite) -> None:
        await self._acall(self._settle_storing, dead_row, claim, reason, result=result)

    async def _settle_retry(self, claim: Claim, delay: float, body: bytes | None,
                            keep_count: bool = False) -> None:
        await self._acall(self._settle, retry_row, claim, delay, body, keep_count, ring=True)

    async def _settle_dead(self, claim: Claim, reason: str) -> None:
        await self._acall(self._settle, dead_row, claim, reason)

    async def _settle_release(self, claim: Claim) -> None:
        await self._acall(self._settle, release_row, claim, ring=True)

    async def _renew(self, claims: Sequence[Claim], lease: float) -> set[str]:
        return await self._acall(renew_rows, list(claims), lease, now=self.clock.time())

    def _renew_blocking(self, claims: Sequence[Claim], lease: float) -> set[str]:
        return self._call(renew_rows, list(claims), lease, now=self.clock.time())

    # -- admin ------------------------------------------------------------------------------
    def stats(self, queue: str) -> QueueStats:
        return self._call(queue_stats, queue, now=self.clock.time())

    def queues(self) -> list[str]:
        return self._call(queue_names)

    def purge(self, queue: str) -> int:
        return self._call(purge_rows, queue, now=self.clock.time())

    def dead_letters(self, queue: str | None = None, limit: int = 100) -> list[DeadLetter]:
        return self._call(dead_rows, queue, limit)

    def replay_dead(self, ids: Sequence[str] | None = None, queue: str | None = None) -> int:
        count = self._call(replay_rows, ids, queue)
        if count:
            self._ring(CONSUMERS)
        return count

    def purge_dead(self, queue: str | None = None) -> int:
        return self._call(purge_dead_rows, queue)

    # -- results ----------------------------------------------------------------------------
    def _store(
        self, conn: sqlite3.Connection, task_id: str, record: StoredResult, ttl: float
    ) -> bool:
        # A state on the way (PENDING, STARTED, RETRY) skips the fsync, like a claim: a power
        # cut that loses it also killed every worker that could read it. Outcomes are durable.
        with lease_bookkeeping(conn) if not record.final else contextlib.nullcontext():
            written = store_result(conn, task_id, record, ttl, now=self.clock.time())
        if written and record.final:
            self._ring(RESULTS)
        if self.clock.monotonic() - self._last_sweep > _CLEANUP_EVERY:
            self._last_sweep = self.clock.monotonic()
            sweep_expired(conn, now=self.clock.time())
            kv_sql.sweep(conn, self.clock.time(), _CLEANUP_BATCH)
            control_sql.sweep(conn, self.clock.time(), _CLEANUP_BATCH)
            limits_sql.sweep(conn, self.clock.time(), _CLEANUP_BATCH)
        return written

    def store(self, task_id: str, record: StoredResult, ttl: float) -> bool:
        return self._call(self._store, task_id, record, ttl)

    def store_many(self, records: Sequence[tuple[str, StoredResult]], ttl: float) -> None:
        self._call(self._store_many, records, ttl)

    async def astore_many(self, records: Sequence[tuple[str, StoredResult]], ttl: float) -> None:
        await self._acall(self._store_many, records, ttl)

    def _store_many(self, conn: sqlite3.Connection,
                    records: Sequence[tuple[str, StoredResult]], ttl: float) -> None:
        now = self.clock.time()
        with immediate(conn):
            for task_id, record in records:
                store_result(conn, task_id, record, ttl, now=now)
        if any(record.final for _, record in records):
            self._ring(RESULTS)

    async def astore(self, task_id: str, record: StoredResult, ttl: float) -> bool:
        return await self._acall(self._store, task_id, record, ttl)

    def get_many(self, task_ids: Sequence[str]) -> list[StoredResult | None]:
        return self._call(load_results, task_ids, now=self.clock.time())

    async def aget_many(self, task_ids: Sequence[str]) -> list[StoredResult | None]:
        return await self._acall(load_results, list(task_ids), now=self.clock.time())

    def wait(self, task_id: str, timeout: float | None) -> StoredResult | None:
        deadline = Deadline(timeout)
        # Bound before the first read, so a final result stored after that read still rings it.
        listener = self._listener(RESULTS)
        try:
            while True:
                record = self.get(task_id)
                pause = deadline.pause(_RESULT_RECHECK)
                if (record is not None and record.final) or pause <= 0:
                    return record
                if listener is not None:
                    listener.wait(pause)
                else:
                    time.sleep(min(pause, _FALLBACK_POLL))
        finally:
            if listener is not None:
                listener.close()

    async def await_final(self, task_id: str, timeout: float | None) -> StoredResult | None:
        deadline = Deadline(timeout)
        bell = self._async_bell(RESULTS)
        while True:
            seen = bell.generation if bell is not None else 0
            record = await self.aget(task_id)
            pause = deadline.pause(_RESULT_RECHECK)
            if (record is not None and record.final) or pause <= 0:
                return record
            if bell is not None:
                await bell.wait(seen, pause)
            else:
                await asyncio.sleep(min(pause, _FALLBACK_POLL))

    def forget(self, task_id: str) -> None:
        self._call(forget_result, task_id)

    async def count_member(self, key: str, member: str, ttl: float) -> int:
        return await self._acall(add_member, key, member, ttl, now=self.clock.time())

    # -- events -----------------------------------------------------------------------------
    def _append(self, conn: sqlite3.Connection, events: Sequence[Event],
                retention: Retention) -> None:
        if not events:
            return
        with lease_bookkeeping(conn), immediate(conn):
            events_sql.append_rows(conn, events, retention, self.clock.time())
        self._ring(EVENTS)

    def append_events_sync(self, events: Sequence[Event], retention: Retention) -> None:
        self._call(self._append, events, retention)

    async def append_events(self, events: Sequence[Event], retention: Retention) -> None:
        await self._acall(self._append, events, retention)

    async def read_events(self, after: str | None, limit: int, wait: float) -> list[Event]:
        start = after if after is not None else (await self.last_event_id() or "0")
        deadline = Deadline(wait)
        bell = self._async_bell(EVENTS)
        while True:
            seen = bell.generation if bell is not None else 0
            found = await self._acall(events_sql.read_rows, start, limit)
            if found or deadline.expired:
                return found
            if bell is not None:
                await bell.wait(seen, deadline.pause(_RESULT_RECHECK))
            else:
                await asyncio.sleep(deadline.pause(_FALLBACK_POLL))

    async def last_event_id(self) -> str | None:
        return await self._acall(events_sql.last_id)

    async def heartbeats(self) -> list[Event]:
        return await self._acall(events_sql.heartbeat_rows)

    # -- coordination -----------------------------------------------------------------------
    def _kv(self, conn: sqlite3.Connection, op: Callable[..., T], *args: Any) -> T:
        with immediate(conn):
            return op(conn, *args, now=self.clock.time())

    def put_if_absent(self, key: str, value: bytes, ttl: float) -> bytes | None:
        return self._call(self._kv, kv_sql.put_if_absent, key, value, ttl)

    async def aput_if_absent(self, key: str, value: bytes, ttl: float) -> bytes | None:
        return await self._acall(self._kv, kv_sql.put_if_absent, key, value, ttl)

    def get_value(self, key: str) -> bytes | None:
        return self._call(kv_sql.get, key, now=self.clock.time())

    async def aget_value(self, key: str) -> bytes | None:
        return await self._acall(kv_sql.get, key, now=self.clock.time())

    def value_ttl(self, key: str) -> float | None:
        return self._call(kv_sql.ttl_left, key, now=self.clock.time())

    async def avalue_ttl(self, key: str) -> float | None:
        return await self._acall(kv_sql.ttl_left, key, now=self.clock.time())

    def compare_and_set(self, key: str, expected: bytes | None, value: bytes | None,
                        ttl: float) -> bool:
        return self._call(self._kv, kv_sql.compare_and_set, key, expected, value, ttl)

    async def acompare_and_set(self, key: str, expected: bytes | None, value: bytes | None,
                               ttl: float) -> bool:
        return await self._acall(self._kv, kv_sql.compare_and_set, key, expected, value, ttl)

    def set_value(self, key: str, value: bytes, ttl: float) -> None:
        self._call(self._kv, kv_sql.put, key, value, ttl)

    async def aset_value(self, key: str, value: bytes, ttl: float) -> None:
        await self._acall(self._kv, kv_sql.put, key, value, ttl)

    def delete_value(self, key: str) -> None:
        self._call(self._kv, kv_sql.delete, key)

    async def adelete_value(self, key: str) -> None:
        await self._acall(self._kv, kv_sql.delete, key)

    # -- control: commands, revocations, rate limits, concurrency slots, delayed messages ----
    def _append_control(self, conn: sqlite3.Connection, entries: Sequence[Event],
                        retention: Retention) -> list[str]:
        if not entries:
            return []
        with lease_bookkeeping(conn), immediate(conn):
            ids = control_sql.append_rows(conn, entries, retention, self.clock.time())
        self._ring(CONTROL)
        return ids

    def append_control(self, entries: Sequence[Event], retention: Retention) -> list[str]:
        return self._call(self._append_control, entries, retention)

    async def aappend_control(self, entries: Sequence[Event],
                              retention: Retention) -> list[str]:
        return await self._acall(self._append_control, entries, retention)

    async def aread_control(self, after: str | None, limit: int, wait: float) -> list[Event]:
        start = int(after if after is not None else await self.alast_control_id() or 0)
        deadline = Deadline(wait)
        bell = self._async_bell(CONTROL)
        while True:
            seen = bell.generation if bell is not None else 0
            found = await self._acall(control_sql.read_rows, start, limit)
            if found or deadline.expired:
                return found
            if bell is not None:
                await bell.wait(seen, deadline.pause(_RESULT_RECHECK))
            else:
                await asyncio.sleep(deadline.pause(_FALLBACK_POLL))

    async def alast_control_id(self) -> str | None:
        return await self._acall(control_sql.last_id)

    def revoke_ids(self, ids: Sequence[str], ttl: float) -> None:
        self._call(self._kv, control_sql.revoke, list(ids), ttl)

    async def arevoke_ids(self, ids: Sequence[str], ttl: float) -> None:
        await self._acall(self._kv, control_sql.revoke, list(ids), ttl)

    async def arevoked_ids(self) -> list[str]:
        return await self._acall(control_sql.revoked, now=self.clock.time())

    def _limits(self, conn: sqlite3.Connection, op: Callable[..., T], *args: Any) -> T:
        # Like a claim: a power cut that loses these also stopped every worker counting on them.
        with lease_bookkeeping(conn), immediate(conn):
            return op(conn, *args, now=self.clock.time())

    async def acquire_rate(self, windows: Sequence[RateWindow], member: str) -> float:
        return await self._acall(self._limits, limits_sql.acquire_rate, list(windows), member)

    async def acquire_slot(self, key: str, limit: int, holder: str, lease: float,
                           waiter: Waiter, patience: float) -> tuple[bool, list[Waiter]]:
        return await self._acall(self._limits, limits_sql.acquire_slot, key, limit, holder,
                                 lease, waiter, patience)

    async def release_slot(self, key: str, limit: int, holder: str) -> list[Waiter]:
        return await self._acall(self._limits, limits_sql.release_slot, key, limit, holder)

    async def renew_slots(self, held: Sequence[tuple[str, str]], lease: float) -> set[str]:
        return await self._acall(self._limits, limits_sql.renew_slots, list(held), lease)

    async def slot_woken(self, key: str, holder: str) -> bool:
        return await self._acall(limits_sql.slot_woken, key, holder, now=self.clock.time())

    def scheduled(self, queue: str, limit: int = 100) -> list[Envelope]:
        return self._call(control_sql.scheduled, queue, limit, now=self.clock.time())

    def _wake(self, conn: sqlite3.Connection, queue: str, ids: Sequence[str]) -> int:
        with immediate(conn):
            woken = control_sql.wake(conn, queue, ids, now=self.clock.time())
        if woken:
            self._ring(CONSUMERS)
        return woken

    async def wake_delayed(self, queue: str, ids: Sequence[str]) -> int:
        if not ids:
            return 0
        return await self._acall(self._wake, queue, list(ids))

    # -- lifecycle --------------------------------------------------------------------------
    def close(self) -> None:
        """Close connections, the worker thread and this process's doorbell sockets."""
        if self._closed:
            return
        self._closed = True
        if os.getpid() != self._pid:
            return  # a forked child must not touch its parent's sockets or connections
        with self._bells_lock:
            bells, self._bells = list(self._bells.values()), {}
        for bell in bells:
            bell.close_threadsafe()
        self._executor.close(wait=True)
        self._conns.close_all()
        if self._doorbell is not None:
            self._doorbell.close()

    async def aclose(self) -> None:
        """Close without blocking the loop on the worker thread's last statement."""
        if self._closed:
            return
        loop = asyncio.get_running_loop()
        with self._bells_lock:
            mine = [key for key in self._bells if key[0] is loop]
            for key in mine:
                self._bells.pop(key).close()
        await asyncio.to_thread(self.close)

