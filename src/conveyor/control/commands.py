"""Control commands: what ``app.control`` sends to workers through the store, and their replies.

A command is an :class:`~conveyor.events.Event` on the app's control stream (a
:class:`~conveyor.brokers.ControlLog`): its kind (``revoke``, ``rate-limit``, ``shutdown``,
``ping``, ``registered``) and fields, among them the app's name, the workers it is for
(``destination``: worker names, None for all) and whether replies are wanted. Every worker
process follows the stream from the moment it starts (:mod:`conveyor.middleware.remote_control`)
and, when asked, appends a ``reply`` entry naming the command's id.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ..brokers import ControlLog
from ..clock import Deadline
from ..errors import ConfigurationError
from ..events import Event, Retention

if TYPE_CHECKING:
    from ..app import Conveyor

REVOKE, RATE_LIMIT, SHUTDOWN, PING, REGISTERED = (
    "revoke", "rate-limit", "shutdown", "ping", "registered")
REPLY = "reply"

#: The control stream keeps this many entries, for this long: commands matter when they are
#: sent; what must last (revocations, rate-limit changes) is also kept elsewhere in the store.
RETENTION = Retention(count=10_000, age=3600.0)


def control_log(app: Conveyor) -> ControlLog | None:
    """The app's control stream (kept by its result backend), or None."""
    backend = app.backend
    return backend if isinstance(backend, ControlLog) else None


def require_control_log(app: Conveyor) -> ControlLog:
    found = control_log(app)
    if found is None:
        raise ConfigurationError(f"the result backend {app.backend.url} keeps no control"
                                 " stream; remote control needs one (SQLite, Redis, memory)")
    return found


def command(app: Conveyor, kind: str, *, destination: Sequence[str] | None = None,
            reply: bool = False, **fields: Any) -> Event:
    return Event(kind, app.clock.time(), pid=os.getpid(), fields={
        "app": app.name, "destination": list(destination) if destination else None,
        "reply": reply, **fields})


def addressed(entry: Event, app: Conveyor, worker: str) -> bool:
    """Whether a worker named ``worker`` of ``app`` should act on ``entry``."""
    if entry.kind == REPLY or entry.fields.get("app") != app.name:
        return False
    wanted = entry.fields.get("destination")
    return not wanted or worker in wanted


def reply(app: Conveyor, to: Event, worker: str, answer: dict[str, Any]) -> Event:
    return Event(REPLY, app.clock.time(), worker=worker, pid=os.getpid(),
                 fields={"app": app.name, "to": to.id, "kind": to.kind, **answer})


async def collect(log: ControlLog, app: Conveyor, sent: str, timeout: float,
                  expected: int | None = None) -> list[Event]:
    """The replies to command ``sent`` arriving within ``timeout`` seconds (fewer if
    ``expected`` came sooner), read from the stream without busy polling."""
    deadline, cursor, found = Deadline(timeout), sent, list[Event]()
    while not deadline.expired and (expected is None or len(found) < expected):
        for entry in await log.aread_control(cursor, 500, deadline.pause(1.0)):
            cursor = entry.id
            if (entry.kind == REPLY and entry.fields.get("to") == sent
                    and entry.fields.get("app") == app.name):
                found.append(entry)
    return found


def run_sync(coro: Any) -> Any:
    """Run a coroutine for a sync caller; refuses inside a running loop (use the ``a`` form)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    coro.close()
    raise RuntimeError("called from a running event loop: use the async form (await app.control"
                       ".aping(), ...)")
