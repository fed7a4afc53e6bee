"""Result recording: STARTED when a run begins, the outcome before the message is settled.

Every write is fenced by the delivery's attempt (see :class:`conveyor.brokers.ResultBackend`).
Where the broker is also the result backend, the outcome travels with the settle, so the store
writes both in one atomic step (one commit, fenced by the lease as well).
"""

from __future__ import annotations

from ..brokers import ResultWrite
from ..outcome import Outcome
from ..states import State
from .base import Action, Job, Middleware, Verdict


class Results(Middleware):
    """Records each delivery's states. Silent for ``ignore_result`` tasks, except that EXPIRED
    is still recorded; undecodable messages and unknown tasks record their FAILURE."""

    async def before_run(self, job: Job) -> Verdict | None:
        """Record STARTED (or, with ``track_started`` off, check the record); a task whose
        record is already final (revoked, or done by another delivery) is not run again."""
        if job.task is None or job.task.options.ignore_result:
            return None
        known = _as_claimed(job)
        if known is not _UNKNOWN:
            return known
        backend = job.app.backend
        if _tracks_started(job):
            write = _write(job, State.STARTED)
            if await backend.astore(write.task_id, write.record, write.ttl):
                return None
        else:
            record = await backend.aget(job.id)
            if record is None or not record.final:
                return None
        return Verdict.skip(None)

    async def before_settle(self, job: Job, verdict: Verdict) -> Verdict:
        if verdict.deferred and job.delivery.record == State.STARTED:
            # The broker recorded STARTED while handing it out, but it waits (a rate limit, a
            # busy concurrency key): back to PENDING, recorded with the deferral.
            return await _record(job, verdict, _write(job, State.PENDING))
        if verdict.state is None or (_ignored(job) and verdict.state is not State.EXPIRED):
            return verdict
        write = _write(job, verdict.state, verdict)
        if write.record.state != verdict.state:  # the value could not be encoded
            verdict = _unencodable(job, verdict, write)
        return await _record(job, verdict, write)


async def _record(job: Job, verdict: Verdict, write: ResultWrite) -> Verdict:
    """Store ``write``: with the settle where the broker keeps results, else now."""
    if job.app.shared_store:
        return verdict.with_result(write)
    await job.app.backend.astore(write.task_id, write.record, write.ttl)
    return verdict


_UNKNOWN = Verdict.skip(State.UNKNOWN)  # a sentinel: the broker did not look at the record


def _as_claimed(job: Job) -> Verdict | None:
    """What the record the broker saw while handing the message out says: run (None), skip
    (already final), or ``_UNKNOWN`` when the worker must look itself."""
    record = job.delivery.record
    if record == State.STARTED:
        return None  # recorded in the same step as the claim
    if record and State(record).final:
        return Verdict.skip(None)
    if record and not _tracks_started(job):
        return None  # not final, and no STARTED wanted
    return _UNKNOWN


def _unencodable(job: Job, verdict: Verdict, write: ResultWrite) -> Verdict:
    """A success whose value cannot be stored is a failure (never retried: it would fail the
    same way), dead-lettered as the app says, with the error the record holds."""
    error = Outcome.decode(job.app.codec, write.record).error
    if job.app.conf.dead_letter_failures and error is not None:
        return Verdict(Action.DEAD_LETTER, State.FAILURE, error=error,
                       reason=f"result not encodable: {error.message}", result=verdict.result)
    return Verdict(Action.ACK, State.FAILURE, error=error, result=verdict.result)


def _tracks_started(job: Job) -> bool:
    assert job.task is not None
    own = job.task.options.track_started
    return job.app.conf.track_started if own is None else own


def _ignored(job: Job) -> bool:
    return job.task is not None and job.task.options.ignore_result


def _write(job: Job, state: State, verdict: Verdict | None = None) -> ResultWrite:
    app = job.app
    retries = job.message.retries if job.message is not None else 0
    value, error = (verdict.value, verdict.error) if verdict is not None else (None, None)
    outcome = Outcome(state, value, error, retries,
                      job.message.task if job.message is not None else "", app.clock.time())
    stored = outcome.encode(app.codec, job.delivery.attempt)
    return ResultWrite(job.id, stored, app.result_ttl)
