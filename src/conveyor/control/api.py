"""``app.control``: commands for every worker of an app, through its store.

Commands go out on the app's control stream (:mod:`conveyor.control.commands`) and reach every
worker process running now; what must outlast that (revocations, rate-limit changes) is also
kept in the store, where workers started later find it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from ..brokers import Coordination, Revocations
from ..errors import ConfigurationError
from ..outcome import Outcome
from ..rates import OFF, parse_rate
from ..states import State
from . import commands as cmd

if TYPE_CHECKING:
    from ..app import Conveyor
    from ..brokers import StoredResult
    from ..task import Task
    from .inspect import Inspect

#: Above any real attempt, so a revocation outranks the writes of a run in progress.
REVOKE_ATTEMPT = 2**62


class Control:
    """``app.control``: revoke, change rate limits, shut workers down, ping them, inspect."""

    def __init__(self, app: Conveyor) -> None:
        self.app = app

    def inspect(self, destination: Sequence[str] | None = None) -> Inspect:
        """What workers (all, or those named) run and hold; see :class:`Inspect`."""
        from .inspect import Inspect

        return Inspect(self.app, destination)

    # -- revoke ---------------------------------------------------------------------------
    def revoke(self, tasks: Any, *, terminate: bool = False) -> list[str]:
        """Revoke tasks: ids, results, or a group's or chain's result (all its members).

        A revoked task that has not started never runs anywhere: it is recorded REVOKED, kept
        in the store's revocation set for ``revoke_ttl`` seconds (workers started later, or
        restarted, find it) and broadcast to the running workers. With ``terminate`` a task
        already running is stopped where it runs (see :mod:`conveyor.middleware.revocation`).
        Returns the ids that were not final yet (those now REVOKED).
        """
        ids = task_ids(tasks)
        if not ids:
            return []
        backend, record = self.app.backend, revoked_record(self.app)
        written = [i for i in ids if backend.store(i, record, self.app.result_ttl)]
        if isinstance(backend, Revocations):
            backend.revoke_ids(ids, float(self.app.conf.revoke_ttl))
        self._send(cmd.command(self.app, cmd.REVOKE, ids=ids, terminate=terminate))
        return written

    # -- rate limits ----------------------------------------------------------------------
    def rate_limit(self, target: str | Task[Any, Any], rate: str | None, *,
                   queue: bool = False) -> None:
        """Change a task's (or with ``queue=True`` a queue's) rate limit at run time, on every
        worker: ``"10/s"``, ``"off"`` for none, or None to go back to the configured one. Kept
        in the store until changed again."""
        from ..middleware.rate_limits import queue_target, task_target

        name = target if isinstance(target, str) else target.name
        if not queue and name not in self.app.tasks:
            raise ConfigurationError(f"no task named {name!r} is registered in app"
                                     f" {self.app.name!r}")
        value = None if rate is None else "off" if rate.strip().lower() in OFF else str(
            parse_rate(rate))
        key = queue_target(name) if queue else task_target(name)
        self._store_override(key, value)
        self._send(cmd.command(self.app, cmd.RATE_LIMIT, target=key, rate=value))

    def _store_override(self, target: str, rate: str | None) -> None:
        import orjson

        from ..middleware.rate_limits import OVERRIDE_TTL, decode_overrides, overrides_key

        store = self.app.backend
        if not isinstance(store, Coordination):
            raise ConfigurationError(f"{store.url} keeps no coordination values for rate limits")
        key = overrides_key(self.app)
        while True:  # compare-and-set: concurrent changes of other targets are kept
            raw = store.get_value(key)
            found = decode_overrides(raw)
            if rate is None:
                found.pop(target, None)
            else:
                found[target] = rate
            if store.compare_and_set(key, raw, orjson.dumps(found), OVERRIDE_TTL):
                return

    # -- workers --------------------------------------------------------------------------
    def shutdown(self, destination: Sequence[str] | None = None) -> None:
        """Stop workers gracefully (all, or those named): they finish what runs, give back
        what they hold and exit; a process pool's supervisor exits with its children."""
        self._send(cmd.command(self.app, cmd.SHUTDOWN, destination=destination))

    def ping(self, destination: Sequence[str] | None = None,
             timeout: float = 1.0) -> list[dict[str, Any]]:
        """The worker processes that answered within ``timeout`` seconds."""
        return list(cmd.run_sync(self.aping(destination, timeout)))

    async def aping(self, destination: Sequence[str] | None = None,
                    timeout: float = 1.0) -> list[dict[str, Any]]:
        return await self.aask(cmd.PING, destination, timeout)

    async def aask(self, kind: str, destination: Sequence[str] | None, timeout: float,
                   **fields: Any) -> list[dict[str, Any]]:
        """Send a command asking for replies; each reply's worker, pid and answer."""
        log = cmd.require_control_log(self.app)
        (sent,) = await log.aappend_control(
            [cmd.command(self.app, kind, destination=destination, reply=True, **fields)],
            cmd.RETENTION)
        replies = await cmd.collect(log, self.app, sent, timeout,
                                    await self._expected(destination))
        return [{"worker": r.worker, "pid": r.pid, **r.fields} for r in replies]

    async def _expected(self, destination: Sequence[str] | None) -> int | None:
        """How many processes should answer (the live ones by heartbeat), when known."""
        from .inspect import live_heartbeats

        beats = await live_heartbeats(self.app, destination)
        return len(beats) or None

    def _send(self, entry: Any) -> None:
        log = cmd.control_log(self.app)
        if log is not None:
            log.append_control([entry], cmd.RETENTION)


def revoked_record(app: Conveyor) -> StoredResult:
    return Outcome(State.REVOKED, at=app.clock.time()).encode(app.codec, REVOKE_ATTEMPT)


def task_ids(tasks: Any) -> list[str]:
    """Ids from an id, a result, a group or chain result (every member), or any mix of them."""
    if isinstance(tasks, str):
        return [tasks]
    members = getattr(tasks, "results", None)
    if members is not None and not isinstance(tasks, str):
        found = [i for m in members for i in task_ids(m)]
        own = getattr(tasks, "id", None)
        return list(dict.fromkeys([*([own] if isinstance(own, str) else []), *found]))
    own = getattr(tasks, "id", None)
    if isinstance(own, str):
        parent = getattr(tasks, "parent", None)
        return list(dict.fromkeys([own, *(task_ids(parent) if parent is not None else [])]))
    if isinstance(tasks, Iterable):
        return list(dict.fromkeys(i for t in tasks for i in task_ids(t)))
    raise TypeError(f"cannot revoke {tasks!r}: give task ids or results")
