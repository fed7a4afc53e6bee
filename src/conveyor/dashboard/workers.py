"""Worker processes grouped into workers, with their online state judged by heartbeats.

A worker command (``conveyor worker -n NAME``) runs one or more processes, each beating on its
own; the dashboard lists the worker once, summing its processes. A process counts as offline
when it said goodbye or missed ``MISSED_BEATS`` of its own intervals
(:func:`conveyor.events.alive`); a worker is online while any process of it is.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from ..events import Event, alive
from ..urls import mask_url


@dataclass
class WorkerView:
    name: str
    hostname: str = ""
    pool: str = ""
    queues: list[str] = field(default_factory=list)
    pids: list[int] = field(default_factory=list)
    concurrency: int = 0
    processes_online: int = 0
    active: list[dict[str, Any]] = field(default_factory=list)
    processed: int = 0
    failed: int = 0
    load: list[float] = field(default_factory=list)
    last_heartbeat: float = 0.0
    started_at: float = 0.0
    broker: str = ""

    @property
    def online(self) -> bool:
        return self.processes_online > 0

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "hostname": self.hostname, "pool": self.pool,
                "queues": self.queues, "pids": self.pids, "concurrency": self.concurrency,
                "processes_online": self.processes_online, "active": self.active,
                "processed": self.processed, "failed": self.failed, "load": self.load,
                "last_heartbeat": self.last_heartbeat, "started_at": self.started_at,
                "broker": self.broker, "online": self.online}


def group(processes: Iterable[Event], now: float) -> list[WorkerView]:
    """Workers from the latest event of each process: online ones first, then by name."""
    beats = list(processes)
    living = {e.process for e in alive(beats, now)}
    found: dict[str, WorkerView] = {}
    for event in sorted(beats, key=lambda e: (e.worker, e.pid)):
        view = found.setdefault(event.worker, WorkerView(event.worker))
        _add(view, event, event.process in living)
    return sorted(found.values(), key=lambda w: (not w.online, w.name))


def _add(view: WorkerView, event: Event, online: bool) -> None:
    f = event.fields
    view.hostname = str(f.get("hostname") or view.hostname)
    view.pool = str(f.get("pool") or view.pool)
    view.queues = sorted({*view.queues, *(str(q) for q in f.get("queues") or ())})
    view.pids.append(event.pid)
    view.last_heartbeat = max(view.last_heartbeat, event.at)
    started = float(f.get("started_at") or 0.0)
    view.started_at = min(view.started_at, started) if view.started_at else started
    view.broker = mask_url(str(f.get("broker") or view.broker))
    view.processed += int(f.get("processed") or 0)
    view.failed += int(f.get("failed") or 0)
    if online:
        view.processes_online += 1
        view.concurrency += int(f.get("concurrency") or 0)
        view.active += [a for a in f.get("active") or () if isinstance(a, dict)]
        view.load = [float(x) for x in f.get("load") or ()] or view.load


