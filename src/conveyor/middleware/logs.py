"""The worker's log line per finished delivery: task, id, state, runtime (INFO), with the error
for failures and retries (WARNING) and the reason for dead letters."""

from __future__ import annotations

import logging

from ..states import State
from .base import Action, Job, Middleware, Verdict

log = logging.getLogger("conveyor.worker")


class TaskLog(Middleware):
    async def after_settle(self, job: Job, verdict: Verdict) -> None:
        quiet = verdict.state is State.SUCCESS or verdict.error is None
        if quiet and verdict.action is Action.ACK and not log.isEnabledFor(logging.INFO):
            return  # the common case at level warning: nothing to format
        runtime = job.app.clock.monotonic() - job.started if job.started else 0.0
        head = f"{job.name}[{job.id}]"
        error = verdict.error
        why = f": {error.type}: {error.message}" if error is not None else ""
        if verdict.deferred:
            log.debug("%s waits %.2fs: %s", head, verdict.delay, verdict.reason)
        elif verdict.action is Action.RETRY:
            log.warning("%s RETRY in %.2fs after %.3fs%s", head, verdict.delay, runtime, why)
        elif verdict.action is Action.DEAD_LETTER:
            log.warning("%s %s, dead-lettered: %s", head, verdict.state or "-", verdict.reason)
        elif verdict.state is State.FAILURE:
            log.warning("%s FAILURE in %.3fs%s", head, runtime, why)
        else:
            log.info("%s %s in %.3fs", head, verdict.state or "skipped", runtime)
