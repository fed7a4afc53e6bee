"""Expiry: a task whose ``expires`` passed before a worker started it is not run (EXPIRED)."""

from __future__ import annotations

from ..states import State
from .base import Job, Middleware, Verdict


class Expiry(Middleware):
    async def before_run(self, job: Job) -> Verdict | None:
        expires = job.message.expires if job.message is not None else None
        if expires is not None and job.app.clock.time() > expires:
            return Verdict.skip(State.EXPIRED)
        return None
