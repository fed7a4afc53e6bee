"""Prometheus metrics from the event stream: ``/metrics`` of the dashboard and
``conveyor metrics -A app --port N``.

Counters and histograms are fed by the same event follower as the dashboard
(:class:`conveyor.dashboard.follower.Follower`); queue depths and workers online are read when
scraped (queue statistics cached for ``queue_cache`` seconds, so many scrapers cost the broker
one query a queue at most that often). Needs the ``metrics`` extra (prometheus-client).

=========================================  ======================================================
``conveyor_tasks_total{task,state}``       tasks that reached a final state (SUCCESS, FAILURE,
                                           REVOKED, EXPIRED)
``conveyor_task_retries_total{task}``      retries scheduled
``conveyor_dead_letters_total{task}``      messages dead-lettered
``conveyor_task_runtime_seconds{task}``    histogram of run times
``conveyor_task_queue_wait_seconds{task}`` histogram of send-to-start times
``conveyor_queue_messages{queue,status}``  ready, in_flight, delayed and dead messages per queue
``conveyor_workers_online``                workers with at least one live process
``conveyor_worker_processes_online``       worker processes heartbeating
``conveyor_events_total{kind}``            events read
=========================================  ======================================================
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.registry import Collector

from . import events as ev
from .brokers import QueueAdmin, QueueStats
from .errors import ConveyorError
from .events import Event, alive
from .queuecounts import queue_counts

if TYPE_CHECKING:
    from prometheus_client import Metric

    from .app import Conveyor

log = logging.getLogger("conveyor.metrics")

__all__ = ["CONTENT_TYPE_LATEST", "Metrics"]

_FINAL = {ev.TASK_SUCCEEDED: "SUCCESS", ev.TASK_FAILED: "FAILURE", ev.TASK_REVOKED: "REVOKED",
          ev.TASK_EXPIRED: "EXPIRED"}
RUNTIME_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)
WAIT_BUCKETS = (0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900)


class Metrics:
    """A Prometheus registry of one app's task and worker figures; ``observe`` events into it
    and ``render()`` the text format."""

    def __init__(self, app: Conveyor, processes: Callable[[], Iterable[Event]] = list,
                 queue_cache: float = 5.0) -> None:
        from .dashboard.stats import Waits

        self.app, self.registry = app, CollectorRegistry()
        self._waits = Waits()
        r = self.registry
        self.tasks = Counter("conveyor_tasks", "Tasks that reached a final state.",
                             ["task", "state"], registry=r)
        self.retries = Counter("conveyor_task_retries", "Retries scheduled.", ["task"],
                               registry=r)
        self.dead = Counter("conveyor_dead_letters", "Messages dead-lettered.", ["task"],
                            registry=r)
        self.events = Counter("conveyor_events", "Events read.", ["kind"], registry=r)
        self.runtime = Histogram("conveyor_task_runtime_seconds", "Task run times.", ["task"],
                                 buckets=RUNTIME_BUCKETS, registry=r)
        self.wait = Histogram("conveyor_task_queue_wait_seconds",
                              "Seconds from send to start.", ["task"], buckets=WAIT_BUCKETS,
                              registry=r)
        r.register(_LiveCollector(app, processes, queue_cache))

    def observe(self, events: Sequence[Event]) -> None:
        for event in events:
            self.events.labels(event.kind).inc()
            kind, name = event.kind, event.task
            if kind == ev.TASK_RECEIVED:
                self._waits.received(event)
            elif kind == ev.TASK_STARTED:
                wait = self._waits.wait(event)
                if wait is not None:
                    self.wait.labels(name).observe(wait)
            elif kind in _FINAL:
                self._waits.queue(event, True)
                self.tasks.labels(name, _FINAL[kind]).inc()
                runtime = event.fields.get("runtime")
                if isinstance(runtime, int | float):
                    self.runtime.labels(name).observe(float(runtime))
            elif kind == ev.TASK_RETRIED:
                self.retries.labels(name).inc()
            elif kind == ev.TASK_DEAD_LETTERED:
                self.dead.labels(name).inc()

    def render(self) -> bytes:
        """The registry in the Prometheus text format (blocking: reads queue statistics)."""
        return generate_latest(self.registry)


class _LiveCollector(Collector):
    """Queue depths and workers online, read at scrape time."""

    def __init__(self, app: Conveyor, processes: Callable[[], Iterable[Event]],
                 cache: float) -> None:
        self.app, self.processes, self.cache = app, processes, cache
        self._stats: tuple[float, list[QueueStats]] = (float("-inf"), [])
        self._lock = threading.Lock()

    def collect(self) -> Iterator[Metric]:
        now = self.app.clock.time()
        living = alive(list(self.processes()), now)
        yield GaugeMetricFamily("conveyor_workers_online", "Workers with a live process.",
                                value=len({e.worker for e in living}))
        yield GaugeMetricFamily("conveyor_worker_processes_online",
                                "Worker processes heartbeating.", value=len(living))
        depth = GaugeMetricFamily("conveyor_queue_messages", "Messages per queue and status.",
                                  labels=["queue", "status"])
        for s in self._queue_stats(now, living):
            for status, value in (("ready", s.ready), ("in_flight", s.in_flight),
                                  ("delayed", s.delayed), ("dead", s.dead)):
                depth.add_metric([s.queue, status], value)
        yield depth

    def _queue_stats(self, now: float, living: list[Event]) -> list[QueueStats]:
        with self._lock:
            at, found = self._stats
            if now - at < self.cache:
                return found
            broker = self.app.broker
            if isinstance(broker, QueueAdmin):
                try:
                    found = queue_counts(broker, self.app.default_queue, living)
                except ConveyorError as exc:  # keep serving the other figures
                    log.warning("cannot read queue statistics: %s", exc)
            self._stats = (now, found)
            return found


def serve(app: Conveyor, host: str = "127.0.0.1", port: int = 9808) -> None:
    """``conveyor metrics``: follow ``app``'s events and serve ``/metrics`` until interrupted.
    Counters start at zero with the process, as Prometheus expects of a fresh exporter."""
    import asyncio

    asyncio.run(_serve(app, host, port))


async def _serve(app: Conveyor, host: str, port: int) -> None:
    from prometheus_client import start_http_server

    from .dashboard.follower import Follower

    follower = Follower(app)
    metrics = Metrics(app, lambda: list(follower.processes.copy().values()))
    follower.observers.append(metrics)
    await follower.start()
    server, thread = start_http_server(port, host, registry=metrics.registry)
    log.info("serving metrics on http://%s:%d/metrics", host, port)
    try:
        await follower.run()
    finally:
        server.shutdown()
        thread.join(5)
