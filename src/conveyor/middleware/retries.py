"""Retries: a failure the task's policy retries becomes a retry-later of the same message.

The new body (retries + 1, its ETA) replaces the old one in the store's atomic retry-later, so
a worker dying between the two neither loses nor duplicates the task.
"""

from __future__ import annotations

import dataclasses
import logging

from ..states import State
from .base import Action, Job, Middleware, Verdict

log = logging.getLogger("conveyor.worker")


class Retries(Middleware):
    """Applies :meth:`conveyor.options.TaskOptions.retry_countdown` to failures."""

    async def after_run(self, job: Job, verdict: Verdict) -> Verdict:
        if verdict.state is not State.FAILURE or verdict.exc is None:
            return verdict
        assert job.task is not None and job.message is not None
        countdown = job.task.options.retry_countdown(verdict.exc, job.message.retries)
        if countdown is None:
            return verdict
        again = dataclasses.replace(job.message, retries=job.message.retries + 1,
                                    eta=job.app.clock.time() + countdown)
        body = job.app.envelope(again).body
        return Verdict(Action.RETRY, State.RETRY, error=verdict.error, delay=countdown,
                       body=body, exc=verdict.exc)
