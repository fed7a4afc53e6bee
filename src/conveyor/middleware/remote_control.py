"""Remote control, worker side: every worker process follows the app's control stream (see
:mod:`conveyor.control.commands`) from the moment it starts, and acts on the commands meant for
it: ``ping``, ``registered`` and ``shutdown`` here, the others in the features that declare them
(:class:`Commanded`: revocation, rate limits).

Start-up order matters for state that also lives in the store: the worker notes the stream's
newest id first, then each feature loads its state (revoked ids, rate-limit changes), then the
worker follows the stream from the noted id. A command sent meanwhile is therefore seen at
least once, never missed.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

from ..brokers import ControlLog
from ..control import commands as cmd
from ..errors import BrokerError
from .base import Middleware

if TYPE_CHECKING:
    from ..events import Event
    from ..worker.worker import Worker

log = logging.getLogger("conveyor.control")
_STOPPING: set[asyncio.Task[None]] = set()


class Commanded:
    """A feature that acts on control commands of the kinds in ``commands``."""

    commands: tuple[str, ...] = ()

    async def control_start(self, worker: Worker) -> None:
        """Load what the store keeps for this feature; called before commands are followed."""
        return None

    async def on_command(self, worker: Worker, entry: Event) -> dict[str, Any] | None:
        """Act on ``entry``; what to reply with (when the sender asked for replies), or None."""
        return None


class RemoteControl(Middleware):
    def __init__(self) -> None:
        self._followers: dict[int, asyncio.Task[None]] = {}

    async def worker_start(self, worker: Worker) -> None:
        stream = cmd.control_log(worker.app)
        if stream is None:
            return
        cursor: str | None = None
        try:
            cursor = await stream.alast_control_id() or "0"
            for feature in _features(worker):
                await feature.control_start(worker)
        except BrokerError as exc:  # the consumer rides the outage out; so do commands
            log.warning("could not load control state: %s", exc)
        self._followers[id(worker)] = asyncio.ensure_future(_follow(worker, stream, cursor))

    async def worker_stop(self, worker: Worker) -> None:
        follower = self._followers.pop(id(worker), None)
        if follower is not None:
            follower.cancel()


def _features(worker: Worker) -> list[Commanded]:
    return [m for m in worker.app.middleware.all if isinstance(m, Commanded)]


async def _follow(worker: Worker, stream: ControlLog, cursor: str | None) -> None:
    backoff = 0.5
    while True:
        try:
            if cursor is None:  # the store was down at start: from what comes next
                cursor = await stream.alast_control_id() or "0"
            entries = await stream.aread_control(cursor, 100, 5.0)
        except BrokerError as exc:
            log.warning("control stream unreadable, retrying in %.1fs: %s", backoff, exc)
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 5.0)
            continue
        backoff = 0.5
        for entry in entries:
            cursor = entry.id
            if cmd.addressed(entry, worker.app, worker.name):
                try:
                    await _dispatch(worker, stream, entry)
                except Exception:  # one bad command must not end remote control
                    log.exception("control command %s failed", entry.kind)


async def _dispatch(worker: Worker, stream: ControlLog, entry: Event) -> None:
    answer = await _answer(worker, entry)
    if entry.fields.get("reply") and answer is not None:
        await stream.aappend_control([cmd.reply(worker.app, entry, worker.name, answer)],
                                     cmd.RETENTION)
    if entry.kind == cmd.SHUTDOWN:  # not awaited here: stopping ends this very follower
        stopping = asyncio.ensure_future(_shut_down(worker))
        _STOPPING.add(stopping)
        stopping.add_done_callback(_STOPPING.discard)


async def _answer(worker: Worker, entry: Event) -> dict[str, Any] | None:
    if entry.kind == cmd.PING:
        return {"ok": True}
    if entry.kind == cmd.REGISTERED:
        return {"tasks": sorted(worker.app.tasks)}
    if entry.kind == cmd.SHUTDOWN:
        return {"ok": True, "running": len(worker.running)}
    for feature in _features(worker):
        if entry.kind in feature.commands:
            return await feature.on_command(worker, entry)
    return None


async def _shut_down(worker: Worker) -> None:
    from ..worker.pools import EXIT_SHUTDOWN

    log.warning("worker %s: shutdown requested remotely", worker.name)
    if worker.exit_on_runaway:  # a process-pool child: tell the supervisor not to replace it
        worker.exit_code = EXIT_SHUTDOWN
    await worker.stop()
