"""Events on the seam: task events for every state change, and each worker process's online,
heartbeat and offline events (see :mod:`conveyor.events`).

A worker buffers its events and writes them in one round trip a fraction of a second later
(:class:`EventBuffer`), so events cost a task no round trip of its own.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from .. import events as ev
from ..brokers import EventLog
from ..errors import BrokerError
from ..events import Event, Retention, brief
from ..states import State
from .base import Action, Call, Job, Middleware, Verdict

if TYPE_CHECKING:
    from ..app import Conveyor
    from ..message import Message
    from ..worker.worker import Worker

log = logging.getLogger("conveyor.events")

#: Seconds between a worker's event writes, and the most events one write carries.
FLUSH_EVERY, FLUSH_MAX = 0.1, 1000

_FINAL_KIND = {State.SUCCESS: ev.TASK_SUCCEEDED, State.FAILURE: ev.TASK_FAILED,
               State.REVOKED: ev.TASK_REVOKED, State.EXPIRED: ev.TASK_EXPIRED}


class EventBuffer:
    """A worker's outgoing events: collected, then written together every ``FLUSH_EVERY``
    seconds. If the store is down the batch is dropped with a warning (events are monitoring;
    a task's state is in the result backend)."""

    def __init__(self, log_store: EventLog, retention: Retention) -> None:
        self.store, self.retention = log_store, retention
        self._pending: list[Event] = []
        self._flusher: asyncio.Task[None] | None = None

    def emit(self, event: Event) -> None:
        self._pending.append(event)
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.ensure_future(self._flush_soon())

    async def _flush_soon(self) -> None:
        """Every ``FLUSH_EVERY`` seconds, write what is pending then, while events keep coming:
        events emitted during a write wait for the next tick instead of making a write of
        their own at once (on SQLite a write is a commit, an fsync)."""
        while True:
            await asyncio.sleep(FLUSH_EVERY)
            await self._write(len(self._pending))
            if not self._pending:
                return

    async def flush(self) -> None:
        """Write every pending event now (at close)."""
        while self._pending:
            await self._write(len(self._pending))

    async def _write(self, count: int) -> None:
        """Write the first ``count`` pending events, ``FLUSH_MAX`` per write."""
        while count > 0 and self._pending:
            take = min(count, FLUSH_MAX)
            batch, self._pending = self._pending[:take], self._pending[take:]
            count -= take
            try:
                await self.store.append_events(batch, self.retention)
            except BrokerError as exc:
                log.warning("dropped %d event(s): %s", len(batch), exc)

    async def close(self) -> None:
        if self._flusher is not None:
            self._flusher.cancel()
        await self.flush()


def event_log(app: Conveyor) -> EventLog | None:
    """The app's event store (its result backend, when that keeps events), or None."""
    backend = app.backend
    return backend if app.conf.events and isinstance(backend, EventLog) else None


def retention(app: Conveyor) -> Retention:
    return Retention(app.conf.event_retention, app.conf.event_max_age)


class Events(Middleware):
    """Emits the events of :mod:`conveyor.events`. Inside a worker they go through its
    :class:`EventBuffer`; elsewhere (``conveyor.testing.run_queued``) they are written at once."""

    def after_publish(self, app: Conveyor, messages: Sequence[Message]) -> None:
        store = event_log(app) if app.conf.send_sent_events else None
        if store is not None:
            now = app.clock.time()
            store.append_events_sync([_sent(m, now) for m in messages], retention(app))

    def __init__(self) -> None:
        self._beats: dict[int, asyncio.Task[None]] = {}

    async def worker_start(self, worker: Worker) -> None:
        if worker.events is not None:
            worker.events.emit(worker_event(worker, ev.WORKER_ONLINE))
            self._beats[id(worker)] = asyncio.ensure_future(_beat(worker, worker.events))

    async def worker_stop(self, worker: Worker) -> None:
        beat = self._beats.pop(id(worker), None)
        if beat is not None:
            beat.cancel()
        if worker.events is not None:
            worker.events.emit(worker_event(worker, ev.WORKER_OFFLINE))

    async def before_run(self, job: Job) -> Verdict | None:
        message = job.message
        if message is not None:
            await _emit(job, ev.TASK_RECEIVED, queue=message.queue, retries=message.retries,
                        attempt=job.delivery.attempt, deliveries=job.delivery.deliveries,
                        eta=message.eta, args=brief(message.args), kwargs=brief(message.kwargs),
                        sent_at=message.created, **_workflow_fields(message))
        return None

    async def around_run(self, job: Job, call: Call) -> Any:
        await _emit(job, ev.TASK_STARTED)
        return await call()

    async def after_settle(self, job: Job, verdict: Verdict) -> None:
        runtime = job.app.clock.monotonic() - job.started if job.started else None
        error = verdict.error
        details: dict[str, Any] = {} if error is None else {"error": error.type,
                                                             "message": error.message}
        if verdict.deferred:
            await _emit(job, ev.TASK_DEFERRED, delay=verdict.delay, reason=verdict.reason)
            return
        if verdict.action is Action.RETRY:
            await _emit(job, ev.TASK_RETRIED, delay=verdict.delay, runtime=runtime, **details)
            return
        kind = _FINAL_KIND.get(verdict.state) if verdict.state is not None else None
        if kind is not None:
            value = {"result": brief(verdict.value)} if verdict.state is State.SUCCESS else {}
            await _emit(job, kind, runtime=runtime, **details, **value)
        if verdict.action is Action.DEAD_LETTER:
            await _emit(job, ev.TASK_DEAD_LETTERED, reason=verdict.reason)


#: Where a task sits in a workflow (see conveyor.canvas), for a dashboard to draw it.
_WORKFLOW_FIELDS = ("root_id", "parent_id", "group_id", "scheduled_for")


def _workflow_fields(message: Message) -> dict[str, Any]:
    options = message.options
    return {k: options[k] for k in _WORKFLOW_FIELDS if k in options} if options else {}


async def _emit(job: Job, kind: str, **fields: Any) -> None:
    worker = job.worker
    event = Event(kind, job.app.clock.time(), job.id, job.name,
                  worker.name if worker is not None else "", os.getpid(), fields)
    if worker is not None:
        if worker.events is not None:
            worker.events.emit(event)
        return
    store = event_log(job.app)
    if store is not None:
        await store.append_events([event], retention(job.app))


async def _beat(worker: Worker, buffer: EventBuffer) -> None:
    while True:
        await asyncio.sleep(worker.app.conf.heartbeat_interval)
        buffer.emit(worker_event(worker, ev.WORKER_HEARTBEAT))


def _sent(message: Message, now: float) -> Event:
    return Event(ev.TASK_SENT, now, message.id, message.task, "", os.getpid(),
                 {"queue": message.queue, "eta": message.eta, "args": brief(message.args),
                  "kwargs": brief(message.kwargs)})


def worker_event(worker: Worker, kind: str) -> Event:
    """An online/heartbeat/offline event with the worker process's state and counters."""
    now = worker.app.clock.time()
    active = [{"id": job.id, "task": job.name, "runtime": worker.runtime(job),
               "queue": job.delivery.envelope.queue}
              for job in list(worker.running.values())]
    return Event(kind, now, "", "", worker.name, os.getpid(), {
        "hostname": socket.gethostname(), "queues": worker.queues, "pool": worker.pool,
        "concurrency": worker.concurrency, "prefetch": worker.prefetch,
        "active": active, "processed": worker.processed, "failed": worker.failed,
        "load": list(os.getloadavg()) if hasattr(os, "getloadavg") else [],
        "interval": worker.app.conf.heartbeat_interval, "started_at": worker.started_at,
        "broker": worker.app.broker.url, "groups": worker.lanes(),
        **({"tasks": sorted(worker.app.tasks)} if kind == ev.WORKER_ONLINE else {})})


def require_event_log(app: Conveyor) -> EventLog:
    """The app's event log, or ConfigurationError saying why there is none."""
    if not app.conf.events:
        from ..errors import ConfigurationError

        raise ConfigurationError("events are off (setting events=False)")
    backend = app.backend
    if not isinstance(backend, EventLog):
        from ..errors import ConfigurationError

        raise ConfigurationError(f"the result backend {backend.url} keeps no events")
    return backend
