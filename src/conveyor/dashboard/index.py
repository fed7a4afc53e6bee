"""The dashboard's task index: a SQLite file it owns, fed by events, kept across restarts.

One row per task id (name, state, worker, queue, times, retries, short reprs of arguments and
result, error, parent) with its timeline of events as JSON lines, and the id of the last event
applied, written in the same transaction as the rows it produced: a restarted dashboard resumes
right after it, so nothing is counted twice or lost. Worker processes seen are kept too, so
workers that went offline are still listed after a restart.

Lists are ordered by first sight (``n``, an integer primary key) and paged by keyset
(``n < before``), with an index per filter column, so the 100,000th page costs what the first
does. The index holds at most ``keep`` tasks; the oldest go first.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from .. import events as ev
from ..errors import ConfigurationError
from ..events import Event

LAYOUT = 1

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS tasks (
    n           INTEGER PRIMARY KEY AUTOINCREMENT,
    id          TEXT NOT NULL UNIQUE,
    name        TEXT NOT NULL DEFAULT '',
    state       TEXT NOT NULL DEFAULT 'PENDING',
    worker      TEXT NOT NULL DEFAULT '',
    queue       TEXT NOT NULL DEFAULT '',
    seen_at     REAL NOT NULL,
    updated_at  REAL NOT NULL,
    sent_at     REAL,
    received_at REAL,
    started_at  REAL,
    finished_at REAL,
    runtime     REAL,
    wait        REAL,
    retries     INTEGER NOT NULL DEFAULT 0,
    args        TEXT NOT NULL DEFAULT '',
    kwargs      TEXT NOT NULL DEFAULT '',
    result      TEXT NOT NULL DEFAULT '',
    error       TEXT NOT NULL DEFAULT '',
    message     TEXT NOT NULL DEFAULT '',
    dead        INTEGER NOT NULL DEFAULT 0,
    parent      TEXT NOT NULL DEFAULT '',
    timeline    TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS tasks_name ON tasks (name, n);
CREATE INDEX IF NOT EXISTS tasks_state ON tasks (state, n);
CREATE INDEX IF NOT EXISTS tasks_worker ON tasks (worker, n);
CREATE INDEX IF NOT EXISTS tasks_seen ON tasks (seen_at);
CREATE INDEX IF NOT EXISTS tasks_finished ON tasks (finished_at);
CREATE INDEX IF NOT EXISTS tasks_parent ON tasks (parent) WHERE parent != '';
CREATE TABLE IF NOT EXISTS processes (
    process TEXT PRIMARY KEY,  -- worker/pid
    at      REAL NOT NULL,
    data    BLOB NOT NULL
);
"""

#: The dashboard's names for where a task is; RECEIVED (taken by a worker, not yet started)
#: is the index's own, between PENDING and STARTED.
STATE_OF_KIND = {
    ev.TASK_SENT: "PENDING", ev.TASK_RECEIVED: "RECEIVED", ev.TASK_STARTED: "STARTED",
    ev.TASK_RETRIED: "RETRY", ev.TASK_SUCCEEDED: "SUCCESS", ev.TASK_FAILED: "FAILURE",
    ev.TASK_REVOKED: "REVOKED", ev.TASK_EXPIRED: "EXPIRED",
}
STATES = ("PENDING", "RECEIVED", "STARTED", "RETRY", "SUCCESS", "FAILURE", "REVOKED", "EXPIRED")
FINAL = frozenset({"SUCCESS", "FAILURE", "REVOKED", "EXPIRED"})
FINAL_KINDS = frozenset({ev.TASK_SUCCEEDED, ev.TASK_FAILED, ev.TASK_REVOKED, ev.TASK_EXPIRED})

_COLUMNS = ("id", "name", "state", "worker", "queue", "seen_at", "updated_at", "sent_at",
            "received_at", "started_at", "finished_at", "runtime", "wait", "retries", "args",
            "kwargs", "result", "error", "message", "dead", "parent", "timeline")
# A later event's value wins where it has one; a sent event never moves a task back to PENDING
# and the timeline only grows.
_UPSERT = (
    f"INSERT INTO tasks ({', '.join(_COLUMNS)}) VALUES ({', '.join('?' for _ in _COLUMNS)})"
    " ON CONFLICT(id) DO UPDATE SET"
    " name = CASE excluded.name WHEN '' THEN name ELSE excluded.name END,"
    " state = CASE excluded.state WHEN 'PENDING' THEN state ELSE excluded.state END,"
    " updated_at = max(updated_at, excluded.updated_at),"
    + ",".join(f" {c} = coalesce(excluded.{c}, {c})" for c in (
        "sent_at", "received_at", "started_at", "finished_at", "runtime"))
    + ", wait = coalesce(excluded.wait, excluded.started_at - coalesce(excluded.sent_at, sent_at),"
      " wait)"
    + "," + ",".join(f" {c} = CASE excluded.{c} WHEN '' THEN {c} ELSE excluded.{c} END"
                     for c in ("worker", "queue", "args", "kwargs", "result", "error",
                               "message", "parent"))
    + ", retries = max(retries, excluded.retries), dead = max(dead, excluded.dead),"
      " timeline = timeline || excluded.timeline")


@dataclass
class TaskPatch:
    """What a run of events says about one task (columns of the index; None: unchanged)."""

    id: str
    at: float
    name: str = ""
    state: str = "PENDING"
    worker: str = ""
    queue: str = ""
    times: dict[str, float] = field(default_factory=dict)
    retries: int = 0
    text: dict[str, str] = field(default_factory=dict)
    dead: int = 0
    timeline: list[bytes] = field(default_factory=list)

    def add(self, event: Event) -> None:
        """Fold one more event of this task into the patch (events come in log order)."""
        f = event.fields
        self.at = max(self.at, event.at)
        self.name = event.task or self.name
        state = STATE_OF_KIND.get(event.kind)
        if state is not None and not (state == "PENDING" and self.state != "PENDING"):
            self.state = state
        self.worker = event.worker or self.worker
        self.queue = str(f.get("queue") or self.queue)
        self.retries = max(self.retries, int(f.get("retries") or 0))
        self._times(event)
        for name in ("args", "kwargs", "result", "message"):
            if f.get(name):
                self.text[name] = str(f[name])
        if f.get("error"):
            self.text["error"] = str(f["error"])
        parent = f.get("parent_id") or f.get("parent")
        if parent:
            self.text["parent"] = str(parent)
        if event.kind == ev.TASK_DEAD_LETTERED:
            self.dead = 1
        self.timeline.append(orjson.dumps(_step(event)) + b"\n")

    def _times(self, event: Event) -> None:
        f, kind = event.fields, event.kind
        if kind == ev.TASK_SENT:
            self.times["sent_at"] = event.at
        elif kind == ev.TASK_RECEIVED:
            self.times["received_at"] = event.at
            if isinstance(f.get("sent_at"), int | float) and f["sent_at"]:
                self.times["sent_at"] = float(f["sent_at"])
        elif kind == ev.TASK_STARTED:
            self.times["started_at"] = event.at
            sent = self.times.get("sent_at")
            if sent is not None:
                self.times["wait"] = max(0.0, event.at - sent)
        if kind in FINAL_KINDS:
            self.times["finished_at"] = event.at
        if isinstance(f.get("runtime"), int | float):
            self.times["runtime"] = float(f["runtime"])

    def row(self) -> tuple[Any, ...]:
        t, x = self.times, self.text
        return (self.id, self.name, self.state, self.worker, self.queue, self.at, self.at,
                t.get("sent_at"), t.get("received_at"), t.get("started_at"),
                t.get("finished_at"), t.get("runtime"), t.get("wait"), self.retries,
                x.get("args", ""), x.get("kwargs", ""), x.get("result", ""), x.get("error", ""),
                x.get("message", ""), self.dead, x.get("parent", ""),
                b"".join(self.timeline).decode())


def _step(event: Event) -> dict[str, Any]:
    """One timeline entry: the kind, when, where, and the event's small fields."""
    keep = {k: v for k, v in event.fields.items() if k not in ("args", "kwargs")}
    return {"kind": event.kind, "at": event.at, "worker": event.worker, "pid": event.pid, **keep}


def patches(events: Iterable[Event]) -> list[TaskPatch]:
    """The task events among ``events`` folded into one patch per task, in first-seen order."""
    found: dict[str, TaskPatch] = {}
    for event in events:
        if not event.task_id or event.kind not in ev.TASK_KINDS:
            continue
        patch = found.get(event.task_id)
        if patch is None:
            patch = found[event.task_id] = TaskPatch(event.task_id, event.at)
        patch.add(event)
    return list(found.values())


@dataclass(frozen=True, slots=True)
class TaskFilter:
    """The list's filters; empty strings and None mean "any"."""

    name: str = ""
    state: str = ""
    worker: str = ""
    id: str = ""
    since: float | None = None
    until: float | None = None

    def where(self) -> tuple[list[str], list[Any]]:
        clauses: list[str] = []
        params: list[Any] = []
        for column in ("name", "state", "worker"):
            value = getattr(self, column)
            if value:
                clauses.append(f"{column} = ?")
                params.append(value)
        if self.id:  # a prefix, so a pasted beginning of an id finds it
            clauses.append("id >= ? AND id < ?")
            params += [self.id, self.id + "\U0010ffff"]
        if self.since is not None:
            clauses.append("seen_at >= ?")
            params.append(self.since)
        if self.until is not None:
            clauses.append("seen_at <= ?")
            params.append(self.until)
        return clauses, params


@dataclass(frozen=True, slots=True)
class Page:
    """One page of the list: rows newest first, and the cursor of the next (older) page."""

    rows: list[dict[str, Any]]
    next_before: int | None


class TaskIndex:
    """The index file at ``path``, for the store named ``store`` (a masked URL): a file made
    for one store refuses to serve another, so two stores' tasks never mix."""

    def __init__(self, path: str | Path, store: str, keep: int = 250_000) -> None:
        self.path, self.store, self.keep = str(path), store, keep
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        try:
            self._conn = sqlite3.connect(self.path, check_same_thread=False,
                                         isolation_level=None)
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=NORMAL")
            self._conn.executescript(SCHEMA)
        except sqlite3.Error as exc:
            raise ConfigurationError(f"cannot open the dashboard index {self.path}: {exc}"
                                     ) from exc
        self._conn.row_factory = sqlite3.Row
        self._claim_store()

    def _claim_store(self) -> None:
        owner = self.meta("store")
        if owner is None:
            with self._lock:
                self._conn.executemany("INSERT INTO meta VALUES (?, ?)",
                                       [("store", self.store), ("layout", str(LAYOUT))])
        elif owner != self.store:
            raise ConfigurationError(
                f"the dashboard index {self.path} holds the tasks of {owner}, not of"
                f" {self.store}; give this store another --db")

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def meta(self, key: str) -> str | None:
        with self._lock:
            row = self._conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    @property
    def cursor(self) -> str | None:
        """The id of the last event applied, or None before the first."""
        return self.meta("cursor")

    def reset_cursor(self) -> None:
        """Forget the cursor (the store's log was replaced: its ids started again)."""
        with self._lock:
            self._conn.execute("DELETE FROM meta WHERE key = 'cursor'")

    def apply(self, events: Sequence[Event]) -> list[TaskPatch]:
        """Apply a batch of events and move the cursor past it, in one transaction."""
        if not events:
            return []
        found = patches(events)
        beats = [e for e in events if e.kind in ev.WORKER_KINDS]
        with self._lock:
            self._conn.execute("BEGIN")
            try:
                self._conn.executemany(_UPSERT, [p.row() for p in found])
                self._conn.executemany(
                    "INSERT OR REPLACE INTO processes (process, at, data) VALUES (?, ?, ?)",
                    [(e.process, e.at, e.encode()) for e in beats])
                self._conn.execute("INSERT OR REPLACE INTO meta VALUES ('cursor', ?)",
                                   (events[-1].id,))
                self._conn.execute("COMMIT")
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
        return found

    def trim(self, forget_processes_before: float) -> int:
        """Drop the oldest tasks beyond ``keep`` (a bounded batch) and processes not heard
        from since ``forget_processes_before``; returns how many tasks went."""
        with self._lock:
            gone = self._conn.execute(
                "DELETE FROM tasks WHERE n IN (SELECT n FROM tasks WHERE n <="
                " (SELECT max(n) FROM tasks) - ? ORDER BY n LIMIT 10000)", (self.keep,)).rowcount
            self._conn.execute("DELETE FROM processes WHERE at < ?", (forget_processes_before,))
        return int(gone)

    def processes(self) -> list[Event]:
        """The latest event of every worker process seen, as kept."""
        with self._lock:
            rows = self._conn.execute("SELECT data FROM processes ORDER BY process").fetchall()
        return [Event.decode(bytes(r[0]), "") for r in rows]

    def page(self, where: TaskFilter, before: int | None = None, size: int = 50) -> Page:
        """Tasks matching ``where``, newest first, older than the cursor ``before``."""
        clauses, params = where.where()
        if before is not None:
            clauses.append("n < ?")
            params.append(before)
        sql = ("SELECT n, id, name, state, worker, queue, seen_at, updated_at, started_at,"
               " finished_at, runtime, retries, args, kwargs, result, error, dead FROM tasks")
        if clauses:
            sql += " WHERE " + " AND ".join(clauses)
        sql += " ORDER BY n DESC LIMIT ?"
        with self._lock:
            rows = [dict(r) for r in self._conn.execute(sql, [*params, size + 1])]
        more = len(rows) > size
        rows = rows[:size]
        return Page(rows, rows[-1]["n"] if more and rows else None)

    def task(self, task_id: str) -> dict[str, Any] | None:
        """Everything the index holds on one task, its timeline parsed; None if unknown."""
        with self._lock:
            row = self._conn.execute("SELECT * FROM tasks WHERE id = ?", (task_id,)).fetchone()
        if row is None:
            return None
        found = dict(row)
        found["timeline"] = [orjson.loads(line) for line in found["timeline"].splitlines()]
        return found

    def rows(self, task_ids: Sequence[str]) -> list[dict[str, Any]]:
        """List rows of these tasks (for live updates), in no particular order."""
        if not task_ids:
            return []
        marks = ",".join("?" for _ in task_ids)
        with self._lock:
            found = self._conn.execute(
                "SELECT n, id, name, state, worker, queue, seen_at, updated_at, started_at,"
                f" finished_at, runtime, retries, args, kwargs, result, error, dead FROM tasks"
                f" WHERE id IN ({marks})", list(task_ids)).fetchall()
        return [dict(r) for r in found]

    def children(self, task_id: str, limit: int = 100) -> list[dict[str, Any]]:
        with self._lock:
            found = self._conn.execute(
                "SELECT id, name, state FROM tasks WHERE parent = ? ORDER BY n LIMIT ?",
                (task_id, limit)).fetchall()
        return [dict(r) for r in found]

    def names(self) -> list[str]:
        """Task names seen (for the list's filter), from the name index alone."""
        with self._lock:
            found = self._conn.execute("SELECT DISTINCT name FROM tasks ORDER BY name")
            return [str(r[0]) for r in found if r[0]]

    def finished_since(self, since: float, limit: int = 200_000) -> list[tuple[Any, ...]]:
        """``(finished_at, state, runtime, wait, queue)`` of tasks finished since ``since``:
        what the charts are rebuilt from when the dashboard starts."""
        with self._lock:
            return [tuple(r) for r in self._conn.execute(
                "SELECT finished_at, state, runtime, wait, queue FROM tasks"
                " WHERE finished_at >= ? ORDER BY finished_at LIMIT ?", (since, limit))]

    def count(self) -> int:
        with self._lock:
            return int(self._conn.execute("SELECT count(*) FROM tasks").fetchone()[0])
