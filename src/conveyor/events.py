"""Task and worker events: what happened, when, where. The feed behind ``conveyor events``, the
dashboard, metrics and ``inspect``.

Every state change of a task produces one (``task-sent`` when enabled, ``task-received``,
``task-started``, ``task-succeeded`` with its runtime, ``task-failed`` with the error's type and
message, ``task-retried``, ``task-revoked``, ``task-expired``, ``task-dead-lettered``, and
``task-deferred`` when it waits for a rate limit or a concurrency slot), and every
worker process announces itself (``worker-online``), beats (``worker-heartbeat``, every
``heartbeat_interval`` seconds, with what it runs now and its counters) and leaves
(``worker-offline``). Stores keep events with bounded retention (a count and an age) in an
:class:`EventLog`; :meth:`conveyor.Conveyor.events` follows them live, resumable from an id.

Events are monitoring, not bookkeeping: task states live in the result backend. A worker
batches its events and writes them a fraction of a second later, so a worker killed with
SIGKILL may take its last few events with it, never a task.
"""

from __future__ import annotations

import reprlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

TASK_SENT = "task-sent"
TASK_RECEIVED = "task-received"
TASK_STARTED = "task-started"
TASK_SUCCEEDED = "task-succeeded"
TASK_FAILED = "task-failed"
TASK_RETRIED = "task-retried"
TASK_REVOKED = "task-revoked"
TASK_EXPIRED = "task-expired"
TASK_DEAD_LETTERED = "task-dead-lettered"
TASK_DEFERRED = "task-deferred"  # put back to wait for a rate limit or a concurrency slot
WORKER_ONLINE = "worker-online"
WORKER_HEARTBEAT = "worker-heartbeat"
WORKER_OFFLINE = "worker-offline"

TASK_KINDS = (TASK_SENT, TASK_RECEIVED, TASK_STARTED, TASK_SUCCEEDED, TASK_FAILED, TASK_RETRIED,
              TASK_REVOKED, TASK_EXPIRED, TASK_DEAD_LETTERED, TASK_DEFERRED)
WORKER_KINDS = (WORKER_ONLINE, WORKER_HEARTBEAT, WORKER_OFFLINE)

#: Heartbeats missed before a worker counts as offline.
MISSED_BEATS = 3

_short = reprlib.Repr()
_short.maxstring, _short.maxother, _short.maxlevel = 200, 200, 3
_short.maxdict = _short.maxlist = _short.maxtuple = 8


_PLAIN = (int, float, bool, type(None))


def brief(value: Any) -> str:
    """A short repr for an event (arguments, results): bounded, never the whole payload."""
    if isinstance(value, _PLAIN):
        return repr(value)
    if isinstance(value, tuple | list | dict) and len(value) <= 8 and all(
            isinstance(v, _PLAIN) for v in (value.values() if isinstance(value, dict) else value)):
        text = repr(value)  # small and flat: already bounded, and a tenth of reprlib's cost
        if len(text) <= 200:
            return text
    return _short.repr(value)


@dataclass(frozen=True, slots=True)
class Event:
    """One event. ``id`` is given by the store that keeps it (ordered within that store);
    ``worker`` names the worker (``--name``) and ``pid`` the process within it."""

    kind: str
    at: float
    task_id: str = ""
    task: str = ""
    worker: str = ""
    pid: int = 0
    fields: dict[str, Any] = field(default_factory=dict)
    id: str = ""

    def encode(self) -> bytes:
        """The stored form (the store keeps ``id`` itself)."""
        return orjson.dumps({"k": self.kind, "t": self.at, "i": self.task_id, "n": self.task,
                             "w": self.worker, "p": self.pid, "f": self.fields})

    @classmethod
    def decode(cls, data: bytes, event_id: str) -> Event:
        raw = orjson.loads(data)
        return cls(raw["k"], raw["t"], raw.get("i", ""), raw.get("n", ""), raw.get("w", ""),
                   raw.get("p", 0), raw.get("f") or {}, event_id)

    @property
    def process(self) -> str:
        """``worker/pid``: one worker process, the key of its latest heartbeat."""
        return f"{self.worker}/{self.pid}"

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready form (``conveyor events --json``, the dashboard)."""
        return {"id": self.id, "kind": self.kind, "at": self.at, "task_id": self.task_id,
                "task": self.task, "worker": self.worker, "pid": self.pid, **self.fields}


def encode_batch(events: Sequence[Event]) -> bytes:
    """Several events as one stored entry (stores keep a worker's events in batches)."""
    return orjson.dumps([[e.kind, e.at, e.task_id, e.task, e.worker, e.pid, e.fields]
                         for e in events])


def decode_batch(data: bytes, entry: str) -> list[Event]:
    """The events of one stored entry, with ids ``entry:index`` (a lone event: ``entry``)."""
    raw = orjson.loads(data)
    if isinstance(raw, dict):
        return [Event.decode(data, entry)]
    return [Event(k, t, i, n, w, p, f or {}, f"{entry}:{index}")
            for index, (k, t, i, n, w, p, f) in enumerate(raw)]


def after_cursor(events: Sequence[Event], cursor: str) -> list[Event]:
    """The events of ``events`` (oldest first, from entries at or after the cursor's entry)
    that come after ``cursor``: ``entry:index`` resumes inside an entry, ``entry`` after it."""
    entry, _, index = cursor.partition(":")
    last = int(index) if index else None
    return [e for e in events if not _at_or_before(e.id, entry, last)]


def _at_or_before(event_id: str, entry: str, last: int | None) -> bool:
    own_entry, _, own_index = event_id.partition(":")
    if own_entry != entry:
        return False
    return last is None or int(own_index or 0) <= last


@dataclass(frozen=True, slots=True)
class Retention:
    """How many events a store keeps, and for how long (seconds). Stores keeping events in
    batches trim whole batches, so the count holds approximately."""

    count: int = 100_000
    age: float = 86_400.0

    def entries(self, batch: int) -> int:
        """How many stored entries of ``batch`` events keep about ``count`` events."""
        return max(1, self.count // max(1, batch))


def alive(heartbeats: Sequence[Event], now: float) -> list[Event]:
    """The latest heartbeats of processes not yet counted offline: those that missed fewer
    than ``MISSED_BEATS`` of their own heartbeat intervals."""
    return [e for e in heartbeats if e.kind != WORKER_OFFLINE
            and now - e.at <= MISSED_BEATS * float(e.fields.get("interval", 2.0))]
