"""Rate limits held across every worker: ``@app.task(rate_limit="100/m")`` and per queue
(the ``queue_rate_limits`` setting), in the store's sliding windows
(:class:`~conveyor.brokers.RateLimiter`), so two workers or twenty together stay under them.

A task over its limit is not run and does not wait in a slot or a thread: its message is put
back (:meth:`Verdict.defer`, not a retry of the task) until the turn the store handed it, so
waiters come back one at a time, in the order they first asked, and nothing polls the store.
Tasks that arrive while others wait queue up behind them.

Limits change at run time with ``conveyor control rate-limit TASK 10/s`` (or ``--queue``): the
change is kept in the store (a worker started later reads it) and broadcast to running workers.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import orjson

from ..brokers import Coordination, RateLimiter, RateWindow
from ..control import commands as cmd
from ..errors import ConfigurationError
from ..rates import Rate, parse_optional_rate
from .base import Job, Middleware, Verdict
from .remote_control import Commanded

if TYPE_CHECKING:
    from ..app import Conveyor
    from ..events import Event
    from ..worker.worker import Worker

#: How long a run-time change is kept in the store (it lasts until changed or reset).
OVERRIDE_TTL = 10 * 365 * 86400.0


def overrides_key(app: Conveyor) -> str:
    """The coordination key holding the app's run-time changes: ``{target: rate or "off"}``."""
    return f"rate-limits:{app.name}"


def decode_overrides(raw: bytes | None) -> dict[str, str]:
    return {str(k): str(v) for k, v in orjson.loads(raw).items()} if raw else {}


def task_target(name: str) -> str:
    return f"task:{name}"


def queue_target(name: str) -> str:
    return f"queue:{name}"


class RateLimits(Middleware, Commanded):
    commands = (cmd.RATE_LIMIT,)

    def __init__(self) -> None:
        self.overrides: dict[str, str] = {}

    async def worker_start(self, worker: Worker) -> None:
        app = worker.app
        wanted = app.conf.queue_rate_limits or any(
            t.options.rate_limit for t in app.tasks.values())
        if wanted and not isinstance(app.backend, RateLimiter):
            raise ConfigurationError(f"rate limits need a result backend that keeps them;"
                                     f" {app.backend.url} does not")

    async def control_start(self, worker: Worker) -> None:
        backend = worker.app.backend
        if isinstance(backend, Coordination):
            self.overrides.update(decode_overrides(
                await backend.aget_value(overrides_key(worker.app))))

    async def on_command(self, worker: Worker, entry: Event) -> dict[str, Any] | None:
        target, rate = str(entry.fields.get("target")), entry.fields.get("rate")
        if rate is None:
            self.overrides.pop(target, None)
        else:
            self.overrides[target] = str(rate)
        return {"target": target, "rate": self.rate(worker.app, target)}

    def rate(self, app: Conveyor, target: str) -> str:
        """The rate in force for ``target`` (``"off"`` when none)."""
        kind, _, name = target.partition(":")
        configured: str | None
        if kind == "task":
            task = app.tasks.get(name)
            configured = task.options.rate_limit if task is not None else None
        else:
            configured = app.conf.queue_rate_limits.get(name)
        found = parse_optional_rate(self.overrides.get(target, configured))
        return str(found) if found else "off"

    async def before_run(self, job: Job) -> Verdict | None:
        windows = self.windows(job)
        if not windows:
            return None
        limiter = job.app.backend
        assert isinstance(limiter, RateLimiter)  # checked when the worker started
        wait = await limiter.acquire_rate([w for w, _ in windows], job.id)
        if wait <= 0:
            return None
        why = ", ".join(f"{what} {rate}" for _, (what, rate) in windows)
        return Verdict.defer(wait, f"rate limit ({why})")

    def windows(self, job: Job) -> list[tuple[RateWindow, tuple[str, Rate]]]:
        """The windows this run must have room in: its task's, then its queue's."""
        if job.task is None or job.message is None:
            return []
        app = job.app
        found: list[tuple[RateWindow, tuple[str, Rate]]] = []
        if not (self.overrides or job.task.options.rate_limit or app.conf.queue_rate_limits):
            return found  # no limit anywhere: the common case, on every task's path
        for target, configured in (
                (task_target(job.task.name), job.task.options.rate_limit),
                (queue_target(job.message.queue),
                 app.conf.queue_rate_limits.get(job.message.queue))):
            rate = parse_optional_rate(self.overrides.get(target, configured))
            if rate is not None:
                window = RateWindow(f"{app.name}:{target}", rate.limit, rate.per)
                found.append((window, (target, rate)))
        return found
