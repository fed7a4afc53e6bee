"""Time limits: a task running past its ``time_limit`` fails with TimeLimitExceeded.

A coroutine is cancelled. A thread cannot be stopped from outside, so a sync task past its
limit is abandoned: the runner is marked ``runaway`` and a process-pool child exits once the
delivery is settled, which ends the thread with the process (and the supervisor replaces it).
"""

from __future__ import annotations

import asyncio
from typing import Any

from ..errors import TimeLimitExceeded
from .base import Call, Job, Middleware


class TimeLimits(Middleware):
    async def around_run(self, job: Job, call: Call) -> Any:
        assert job.task is not None
        limit = job.task.options.time_limit
        if limit is None:
            return await call()
        try:
            return await asyncio.wait_for(call(), limit)
        except TimeoutError as exc:
            if not job.task.is_async:
                job.runner.runaway = True
            raise TimeLimitExceeded(f"{job.task.name} ran longer than {limit}s") from exc
