"""Time limits: ``soft_time_limit`` raises SoftTimeLimitExceeded inside the task, which may
catch it to clean up; past ``time_limit`` the task fails with TimeLimitExceeded (or is retried,
if its policy says so). Both come from the task's options, or per call from ``apply_async``.

What each pool can stop (see :mod:`conveyor.worker.interrupt`):

- ``async def`` tasks: the soft limit arrives at the task's ``await``; the hard limit cancels it.
- process pool, plain functions: the hard limit fails the task and settles it, then the child
  exits, ending the thread with it, and the supervisor starts a new child. Should the child's
  event loop itself be stuck (a C call holding the GIL), a kernel timer armed for the hard limit
  plus :data:`BACKSTOP` seconds kills it anyway; that run then returns after its lease and the
  delivery limit ends it if it always hangs.
- thread pool, plain functions: the hard limit fails the task at once and raises
  TimeLimitExceeded in its thread. The thread stops at its next Python instruction; one
  blocked in C (``time.sleep``, a socket read) keeps running, and holds its pool thread, until
  that call returns. Nothing can kill a thread.

Soft limits in threads likewise arrive only between Python instructions.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Iterator
from typing import Any

from ..errors import SoftTimeLimitExceeded, TimeLimitExceeded
from .base import Call, Job, Middleware

#: Seconds past the hard limit after which a process-pool child's kernel timer kills it.
BACKSTOP = 5.0


class TimeLimits(Middleware):
    async def around_run(self, job: Job, call: Call) -> Any:
        soft, hard = limits(job)
        if soft is None and hard is None:
            return await call()
        job.loop_bound = True
        loop = asyncio.get_running_loop()
        timers = [loop.call_later(delay, action, job, delay) for delay, action in (
            (soft, _soft), (hard, _hard)) if delay is not None]
        try:
            with _backstop(job, hard):
                return await call()
        finally:
            for timer in timers:
                timer.cancel()


def limits(job: Job) -> tuple[float | None, float | None]:
    """The soft and hard limits of this run: the call's, else the task's. A soft limit at or
    past the hard one is moot."""
    assert job.task is not None and job.message is not None
    given = job.message.options
    soft = given.get("soft_time_limit", job.task.options.soft_time_limit)
    hard = given.get("time_limit", job.task.options.time_limit)
    if soft is not None and hard is not None and soft >= hard:
        soft = None
    return soft, hard


def _soft(job: Job, limit: float) -> None:
    running = job.runner.running.get(job.id)
    if running is not None:
        running.interrupt(SoftTimeLimitExceeded(f"{job.name} passed its soft time limit"
                                                f" of {limit}s"))


def _hard(job: Job, limit: float) -> None:
    running = job.runner.running.get(job.id)
    if running is None:
        return
    running.stop(TimeLimitExceeded(f"{job.name} ran longer than {limit}s"))
    if running.in_thread:
        job.runner.runaway = True  # its thread may never return: a pool child exits


@contextlib.contextmanager
def _backstop(job: Job, hard: float | None) -> Iterator[None]:
    """In a process-pool child, a kernel timer whose default action ends the process."""
    armed = (hard is not None and job.worker is not None and job.worker.exit_on_runaway
             and hasattr(signal, "setitimer"))
    if armed:
        assert hard is not None
        signal.signal(signal.SIGALRM, signal.SIG_DFL)
        signal.setitimer(signal.ITIMER_REAL, hard + BACKSTOP)
    try:
        yield
    finally:
        if armed:
            signal.setitimer(signal.ITIMER_REAL, 0)
