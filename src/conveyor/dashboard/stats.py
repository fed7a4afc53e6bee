"""What the overview and queue pages chart: finished and failed tasks, runtimes and queue
waits per minute over the last hour, and per-queue rates over the last minute.

Kept in memory from the event stream (a few thousand numbers), rebuilt from the task index
when the dashboard starts, so charts survive a restart. Percentiles come from a bounded random
sample per minute, exact enough for a chart and constant in memory at any rate.
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from .. import events as ev
from ..events import Event

BUCKET = 60.0  # seconds per chart point
SPAN = 3600.0  # the charts' span
RATE_WINDOW = 60.0  # seconds over which rates are given
SAMPLE = 256  # runtimes and waits kept per minute for percentiles
_TRACKED = 100_000  # tasks whose queue and send time are remembered until they finish
_FAILED_KINDS = frozenset({ev.TASK_FAILED})
_FINAL_KINDS = frozenset({ev.TASK_SUCCEEDED, ev.TASK_FAILED, ev.TASK_REVOKED, ev.TASK_EXPIRED})


class Sample:
    """A uniform random sample of at most ``SAMPLE`` values (reservoir sampling)."""

    __slots__ = ("seen", "values")

    def __init__(self) -> None:
        self.values: list[float] = []
        self.seen = 0

    def add(self, value: float) -> None:
        self.seen += 1
        if len(self.values) < SAMPLE:
            self.values.append(value)
        else:
            slot = random.randrange(self.seen)
            if slot < SAMPLE:
                self.values[slot] = value


def percentile(values: Sequence[float], q: float) -> float | None:
    """Nearest-rank percentile ``q`` (0..100) of ``values``; None when empty."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(q / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


@dataclass
class Minute:
    finished: int = 0
    failed: int = 0
    runtime: Sample = field(default_factory=Sample)
    wait: Sample = field(default_factory=Sample)


class Waits:
    """Remembers each running task's queue and send time between its ``task-received`` and
    its end, so a ``task-started`` yields the queue wait and a final event its queue."""

    def __init__(self) -> None:
        self._tasks: dict[str, tuple[str, float | None]] = {}

    def received(self, event: Event) -> None:
        sent = event.fields.get("sent_at")
        self._tasks[event.task_id] = (str(event.fields.get("queue") or ""),
                                      float(sent) if isinstance(sent, int | float) else None)
        if len(self._tasks) > _TRACKED:  # tasks that never finished: forget the oldest
            del self._tasks[next(iter(self._tasks))]

    def wait(self, event: Event) -> float | None:
        """Seconds from send to this ``task-started``, when the send time is known."""
        sent = self._tasks.get(event.task_id, ("", None))[1]
        return None if sent is None or not sent else max(0.0, event.at - sent)

    def queue(self, event: Event, final: bool) -> str:
        found = self._tasks.pop(event.task_id, None) if final else self._tasks.get(event.task_id)
        return "" if found is None else found[0]


class Activity:
    """Per-minute task figures for the last hour and per-queue rates for the last minute."""

    def __init__(self) -> None:
        self.minutes: dict[int, Minute] = defaultdict(Minute)
        self.waits = Waits()
        # per queue: second -> [received, finished]
        self._rates: dict[str, dict[int, list[int]]] = defaultdict(lambda: defaultdict(
            lambda: [0, 0]))
        self._done: dict[int, int] = defaultdict(int)  # second -> tasks finished

    def observe(self, events: Iterable[Event]) -> None:
        for event in events:
            kind = event.kind
            if kind == ev.TASK_RECEIVED:
                self.waits.received(event)
                self._rates[str(event.fields.get("queue") or "")][int(event.at)][0] += 1
            elif kind == ev.TASK_STARTED:
                wait = self.waits.wait(event)
                if wait is not None:
                    self.minutes[int(event.at // BUCKET)].wait.add(wait)
            elif kind in _FINAL_KINDS or kind == ev.TASK_RETRIED:
                self._finished(event, kind)

    def _finished(self, event: Event, kind: str) -> None:
        final = kind in _FINAL_KINDS
        queue = self.waits.queue(event, final)
        if not final:
            return
        self._done[int(event.at)] += 1
        minute = self.minutes[int(event.at // BUCKET)]
        minute.finished += 1
        minute.failed += kind in _FAILED_KINDS
        runtime = event.fields.get("runtime")
        if isinstance(runtime, int | float):
            minute.runtime.add(float(runtime))
        if queue:
            self._rates[queue][int(event.at)][1] += 1

    def restore(self, rows: Iterable[tuple[Any, ...]]) -> None:
        """Refill the charts from the index's ``(finished_at, state, runtime, wait, queue)``."""
        for finished_at, state, runtime, wait, _queue in rows:
            minute = self.minutes[int(finished_at // BUCKET)]
            minute.finished += 1
            minute.failed += state == "FAILURE"
            if runtime is not None:
                minute.runtime.add(runtime)
            if wait is not None:
                minute.wait.add(wait)

    def prune(self, now: float) -> None:
        """Forget minutes older than the span and seconds older than the rate window."""
        oldest = int((now - SPAN) // BUCKET)
        for key in [k for k in self.minutes if k < oldest]:
            del self.minutes[key]
        cut = int(now - RATE_WINDOW)
        for key in [k for k in self._done if k < cut]:
            del self._done[key]
        for seconds in self._rates.values():
            for key in [k for k in seconds if k < cut]:
                del seconds[key]

    def series(self, now: float) -> dict[str, list[Any]]:
        """Chart points, oldest first: one per minute of the last hour."""
        last = int(now // BUCKET)
        keys = range(last - int(SPAN // BUCKET) + 1, last + 1)
        out: dict[str, list[Any]] = {"t": [], "finished": [], "failed": [], "runtime_p50": [],
                                     "runtime_p95": [], "runtime_p99": [], "wait_p50": [],
                                     "wait_p95": []}
        for key in keys:
            m = self.minutes.get(key) or Minute()
            out["t"].append(key * BUCKET)
            out["finished"].append(m.finished)
            out["failed"].append(m.failed)
            for q in (50, 95, 99):
                out[f"runtime_p{q}"].append(percentile(m.runtime.values, q))
            for q in (50, 95):
                out[f"wait_p{q}"].append(percentile(m.wait.values, q))
        return out

    def per_second(self, now: float, window: float = 10.0) -> float:
        """Tasks finished per second over the last ``window`` seconds (every queue)."""
        cut = int(now - window)
        return sum(n for s, n in self._done.items() if s >= cut) / window

    def rates(self, now: float) -> dict[str, tuple[float, float]]:
        """Per queue: (received per second, finished per second) over the last minute."""
        cut = int(now - RATE_WINDOW)
        found = {}
        for queue, seconds in self._rates.items():
            got = sum(c[0] for s, c in seconds.items() if s >= cut)
            done = sum(c[1] for s, c in seconds.items() if s >= cut)
            found[queue] = (got / RATE_WINDOW, done / RATE_WINDOW)
        return found

    def failures(self, now: float) -> int:
        """Tasks that failed in the last hour."""
        oldest = int((now - SPAN) // BUCKET)
        return sum(m.failed for k, m in self.minutes.items() if k >= oldest)
