"""``app.control.inspect()``: what the workers of an app are doing, as plain dicts.

``active``, ``stats`` come from the workers' latest heartbeats (kept by the event log: no
worker is asked, a killed one drops out after three missed beats); ``registered`` asks the
running workers over the control stream (a task list is too large to ride every heartbeat);
``scheduled`` reads the broker's delayed messages (countdowns, retries, tasks waiting for a rate
limit or a concurrency slot).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ..brokers import EventLog, queue_admin
from ..errors import ConveyorError, MessageError
from ..events import alive, brief
from ..message import Message
from . import commands as cmd

if TYPE_CHECKING:
    from ..app import Conveyor
    from ..events import Event


async def live_heartbeats(app: Conveyor, destination: Sequence[str] | None = None
                          ) -> list[Event]:
    """The latest heartbeat of every live worker process (of those named, if any)."""
    backend = app.backend
    if not app.conf.events or not isinstance(backend, EventLog):
        return []
    beats = alive(await backend.heartbeats(), app.clock.time())
    return [b for b in beats if not destination or b.worker in destination]


class Inspect:
    """Inspection of every worker (or those in ``destination``); sync methods, ``a`` forms
    for code on an event loop."""

    def __init__(self, app: Conveyor, destination: Sequence[str] | None = None) -> None:
        self.app = app
        self.destination = list(destination) if destination else None

    async def aactive(self) -> list[dict[str, Any]]:
        """Per worker process: the tasks it runs now (id, task, runtime)."""
        return [{**_where(b), "active": b.fields.get("active", [])}
                for b in await live_heartbeats(self.app, self.destination)]

    def active(self) -> list[dict[str, Any]]:
        return list(cmd.run_sync(self.aactive()))

    async def astats(self) -> list[dict[str, Any]]:
        """Per worker process: pool, slots per queue group, counters, load, uptime."""
        now = self.app.clock.time()
        return [{**_where(b), **{k: b.fields.get(k) for k in (
                    "pool", "concurrency", "prefetch", "queues", "groups", "processed",
                    "failed", "load", "broker")},
                 "active": len(b.fields.get("active", [])),
                 "uptime": now - float(b.fields.get("started_at") or now), "seen": b.at}
                for b in await live_heartbeats(self.app, self.destination)]

    def stats(self) -> list[dict[str, Any]]:
        return list(cmd.run_sync(self.astats()))

    async def aregistered(self, timeout: float = 1.0) -> list[dict[str, Any]]:
        """Per worker process that answered within ``timeout``: its registered task names."""
        control = self.app.control
        replies = await control.aask(cmd.REGISTERED, self.destination, timeout)
        return [{"worker": r["worker"], "pid": r["pid"], "tasks": r.get("tasks", [])}
                for r in replies]

    def registered(self, timeout: float = 1.0) -> list[dict[str, Any]]:
        return list(cmd.run_sync(self.aregistered(timeout)))

    def scheduled(self, queues: Sequence[str] | None = None,
                  limit: int = 100) -> list[dict[str, Any]]:
        """Delayed messages (all queues, or these), earliest first: id, task, queue, eta..."""
        admin = queue_admin(self.app.broker)
        found = []
        for queue in queues or admin.queues():
            for envelope in admin.scheduled(queue, limit):
                found.append({"id": envelope.id, "queue": queue, "eta": envelope.eta,
                              "priority": envelope.priority, **self._describe(envelope.body,
                                                                              envelope.content_type)})
        return sorted(found, key=lambda row: row["eta"] or 0)[:limit]

    def _describe(self, body: bytes, content_type: str) -> dict[str, Any]:
        try:
            message = Message.from_dict(self.app.codec.loads(body, content_type))
        except (MessageError, ConveyorError):
            return {"task": "?", "args": "", "kwargs": "", "retries": 0}
        return {"task": message.task, "args": brief(message.args),
                "kwargs": brief(message.kwargs), "retries": message.retries}


def _where(beat: Event) -> dict[str, Any]:
    return {"worker": beat.worker, "pid": beat.pid, "hostname": beat.fields.get("hostname", "")}
