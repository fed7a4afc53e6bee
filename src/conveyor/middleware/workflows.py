"""Workflows on the seam: what follows a task (the next step of its chain, its chord, its
``link`` and ``link_error`` callbacks) is sent before its message is acknowledged.

A worker killed between the two leaves the message to be delivered again, and the redelivery
does the rest; see :mod:`conveyor.canvas.progress` for why nothing is done twice. A chord
member's result is stored before it is counted (not with the acknowledgement, as other results
are), so the member that completes the count finds every result. A delivery whose outcome was
already stored by an earlier one (its worker died before acknowledging) is not run again, but
its workflow is carried on from the stored outcome. A retry is not an end: nothing happens
until the last attempt.
"""

from __future__ import annotations

from typing import Any

from ..brokers import ResultWrite
from ..errors import TaskExpired, TaskRevoked
from ..outcome import ErrorInfo, Outcome
from ..states import State
from .base import Action, Job, Middleware, Verdict

_NOT_RUN = {State.REVOKED: TaskRevoked, State.EXPIRED: TaskExpired}


class Workflows(Middleware):
    async def before_settle(self, job: Job, verdict: Verdict) -> Verdict:
        from ..canvas.progress import in_workflow

        message = job.message
        if message is None or verdict.action is Action.RETRY or not in_workflow(message):
            return verdict
        redelivered = job.delivery.deliveries > 1 or verdict.state is None
        ended = verdict if verdict.state is not None else await _stored(job)
        if ended is None:
            return verdict
        if ended.state is State.SUCCESS:
            return await _succeeded(job, verdict, ended.value, redelivered)
        await _failed(job, ended, redelivered)
        return verdict


async def _succeeded(job: Job, verdict: Verdict, value: Any, redelivered: bool) -> Verdict:
    from ..canvas.progress import succeeded

    assert job.message is not None
    if "chord" in job.message.options and verdict.state is not None:
        verdict, ours = await _store_now(job, verdict)
        if not ours:  # a later delivery of this task holds it now; that one carries on
            return verdict
    await succeeded(job.app, job.message, value, redelivered)
    return verdict


async def _failed(job: Job, ended: Verdict, redelivered: bool) -> None:
    from ..canvas.progress import failed

    assert job.message is not None and ended.state is not None
    error = ended.error
    if error is None:
        kind = _NOT_RUN.get(ended.state, TaskRevoked)
        error = ErrorInfo.from_exception(kind(f"task {job.id} was {ended.state.lower()}"))
    await failed(job.app, job.message, error, redelivered)


async def _stored(job: Job) -> Verdict | None:
    """The outcome an earlier delivery stored, as a verdict (None when there is none)."""
    record = await job.app.backend.aget(job.id)
    if record is None or not record.final:
        return None
    found = Outcome.decode(job.app.codec, record)
    return Verdict(Action.ACK, found.state, found.value, found.error)


async def _store_now(job: Job, verdict: Verdict) -> tuple[Verdict, bool]:
    """Store a chord member's result before it is counted (the settle then carries none);
    True when the stored result is this success (a zombie's refused write is not)."""
    write = verdict.result
    if write is None and job.task is not None and job.task.options.ignore_result:
        write = _write(job, verdict)
    if write is not None:
        verdict = verdict.with_result(None)
        if await job.app.backend.astore(write.task_id, write.record, write.ttl):
            return verdict, True
    record = await job.app.backend.aget(job.id)  # stored already, by us or an earlier delivery
    return verdict, record is not None and record.state == State.SUCCESS


def _write(job: Job, verdict: Verdict) -> ResultWrite:
    """The record of a member whose result would not be kept (``ignore_result``): a chord
    needs it all the same."""
    assert job.message is not None and verdict.state is not None
    outcome = Outcome(verdict.state, verdict.value, verdict.error, job.message.retries,
                      job.message.task, job.app.clock.time())
    return ResultWrite(job.id, outcome.encode(job.app.codec, job.delivery.attempt),
                       job.app.result_ttl)
