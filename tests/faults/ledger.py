"""The ledger: every task run appends (task id, attempt, pid, phase, time) to a SQLite file of
its own (``synchronous=FULL``, so a row that was written survives the writer's SIGKILL), and the
checker that reads it back and reports lost, duplicated, unexpected and overlapping runs.

A run writes a ``start`` row before its work and an ``end`` row after it. The rule for
duplicates: a task may run again only if every earlier run was cut short by a fault the test
injected, i.e. it was by a process the test killed (or stopped) and had not ended, or ended so
shortly before the kill that its acknowledgement may not have gone out yet.
"""

from __future__ import annotations

import itertools
import os
import sqlite3
import threading
import time
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

SCHEMA = """CREATE TABLE IF NOT EXISTS runs (
    task TEXT NOT NULL, attempt INTEGER NOT NULL, pid INTEGER NOT NULL,
    phase TEXT NOT NULL, at REAL NOT NULL)"""

#: A run that ended this many seconds before its process was killed may still count as in
#: flight: its acknowledgement (which follows the end row) may not have reached the store.
ACK_SLACK = 5.0

_local = threading.local()


def _connect(path: str) -> sqlite3.Connection:
    conn = sqlite3.connect(path, timeout=60, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA busy_timeout = 60000")
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = FULL")
    conn.execute(SCHEMA)
    return conn


def _conn(path: str) -> sqlite3.Connection:
    """One connection per thread and process (a forked or spawned child opens its own)."""
    key = (os.getpid(), path)
    conn: sqlite3.Connection | None = getattr(_local, "conns", {}).get(key)
    if conn is None:
        conn = _connect(path)
        _local.conns = {**getattr(_local, "conns", {}), key: conn}
    return conn


def append(path: str, task: str, attempt: int, phase: str) -> None:
    """Append one row, durably, before returning."""
    _conn(path).execute("INSERT INTO runs VALUES (?, ?, ?, ?, ?)",
                        (task, attempt, os.getpid(), phase, time.time()))


def create(path: Path) -> Path:
    _connect(str(path)).close()
    return path


@dataclass
class Run:
    """One run of a task: when it started and, if it did, ended."""

    task: str
    attempt: int
    pid: int
    started: float
    ended: float | None = None


def read_runs(path: Path) -> list[Run]:
    """Every run in the ledger, in the order they started."""
    conn = _connect(str(path))
    try:
        rows = conn.execute("SELECT task, attempt, pid, phase, at FROM runs ORDER BY rowid")
        runs: dict[tuple[str, int, int], Run] = {}
        for task, attempt, pid, phase, at in rows:
            key = (task, attempt, pid)
            if phase == "start":
                runs[key] = Run(task, attempt, pid, at)
            elif key in runs:
                runs[key].ended = at
    finally:
        conn.close()
    return sorted(runs.values(), key=lambda run: run.started)


def ended_ids(path: Path) -> set[str]:
    conn = _connect(str(path))
    try:
        return {row[0] for row in conn.execute("SELECT task FROM runs WHERE phase = 'end'")}
    finally:
        conn.close()


@dataclass
class Verdict:
    """What the checker found. ``explained`` counts reruns the injected faults account for."""

    expected: int
    lost: list[str] = field(default_factory=list)
    duplicated: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    overlapping: list[str] = field(default_factory=list)
    explained: int = 0
    runs: int = 0

    @property
    def clean(self) -> bool:
        return not (self.lost or self.duplicated or self.unexpected or self.overlapping)

    def summary(self) -> dict[str, int]:
        return {"expected": self.expected, "runs": self.runs, "lost": len(self.lost),
                "duplicated": len(self.duplicated), "reruns_after_faults": self.explained,
                "unexpected": len(self.unexpected), "overlapping": len(self.overlapping)}

    def __str__(self) -> str:
        parts = [f"{k}={v}" for k, v in self.summary().items()]
        for name in ("lost", "duplicated", "unexpected", "overlapping"):
            ids = getattr(self, name)
            if ids:
                parts.append(f"{name} e.g. {ids[:5]}")
        return " ".join(parts)


@dataclass
class Faults:
    """The faults a test injected: pid -> time of its SIGKILL (or SIGSTOP), and the broker's
    outages (start, end): a settle that fell in one failed, so its task may run again."""

    killed: dict[int, float] = field(default_factory=dict)
    outages: list[tuple[float, float]] = field(default_factory=list)

    def kill(self, pid: int) -> None:
        self.killed.setdefault(pid, time.time())

    def in_outage(self, at: float | None) -> bool:
        return at is not None and any(start - ACK_SLACK <= at <= end + ACK_SLACK
                                      for start, end in self.outages)


def check(path: Path, expected: Iterable[str], faults: Faults | None = None, *,
          maybe: Iterable[str] = (), allow_overlap: bool = False) -> Verdict:
    """Compare the ledger with the ids whose enqueue returned (``expected``); ``maybe`` are ids
    whose enqueue raised (they may run, at most once, or not at all)."""
    faults = faults or Faults()
    wanted, uncertain = set(expected), set(maybe)
    runs = read_runs(path)
    by_task: dict[str, list[Run]] = defaultdict(list)
    for run in runs:
        by_task[run.task].append(run)
    verdict = Verdict(len(wanted), runs=len(runs))
    verdict.lost = sorted(t for t in wanted if not any(r.ended for r in by_task.get(t, [])))
    verdict.unexpected = sorted(set(by_task) - wanted - uncertain)
    for task, task_runs in by_task.items():
        cut = [r for r in task_runs[:-1] if _cut_short(r, faults)]
        verdict.explained += len(cut)
        if len(cut) < len(task_runs) - 1:
            verdict.duplicated.append(task)
        if not allow_overlap and _overlap([r for r in task_runs if r.pid not in faults.killed]):
            verdict.overlapping.append(task)
    verdict.duplicated.sort()
    return verdict


def _cut_short(run: Run, faults: Faults) -> bool:
    if faults.in_outage(run.ended if run.ended is not None else run.started):
        return True
    killed_at = faults.killed.get(run.pid)
    if killed_at is None or run.started > killed_at:
        return False
    return run.ended is None or killed_at - run.ended <= ACK_SLACK


def _overlap(runs: list[Run]) -> bool:
    """Two runs of one task at once (runs of faulted processes are left out by the caller)."""
    live = [r for r in runs if r.ended is not None]
    return any(b.started < a.ended for a, b in itertools.pairwise(live)
               if a.ended is not None)


def rerun_delays(path: Path, faults: Faults) -> list[float]:
    """For each run cut short by a kill, seconds from the kill to the task's next start."""
    by_task: dict[str, list[Run]] = defaultdict(list)
    for run in read_runs(path):
        by_task[run.task].append(run)
    delays = []
    for task_runs in by_task.values():
        for cut, nxt in itertools.pairwise(task_runs):
            killed_at = faults.killed.get(cut.pid)
            if killed_at is not None:
                delays.append(max(0.0, nxt.started - killed_at))
    return delays
