"""The delivery limit: a message handed out too many times without an outcome is given up.

A task that kills its own process (a segfault, the OOM killer, ``os._exit``) never reaches a
settle, so the broker hands it out again and again. Past the limit (the task's
``delivery_limit``, else the app's, default 5) it goes to the dead-letter queue with the reason
"delivery limit reached" and its result becomes FAILURE, so ``get()`` raises instead of waiting.
"""

from __future__ import annotations

from ..errors import DeliveryLimitExceeded
from ..outcome import ErrorInfo
from .base import Job, Middleware, Verdict


class DeliveryLimit(Middleware):
    async def before_run(self, job: Job) -> Verdict | None:
        limit = _limit(job)
        count = job.delivery.deliveries
        if count <= limit:
            return None
        reason = (f"delivery limit reached: handed out {count} times without an outcome"
                  f" (limit {limit}); the task may be killing its worker process")
        error = ErrorInfo.from_exception(DeliveryLimitExceeded(f"{job.name}: {reason}"))
        return Verdict.dead(reason, error)


def _limit(job: Job) -> int:
    own = job.task.options.delivery_limit if job.task is not None else None
    return job.app.conf.delivery_limit if own is None else own
