"""The life of one delivery: decode, admit, run, judge, settle. Features hang on the hooks of
:mod:`conveyor.middleware`; this path itself knows none of them."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..brokers import Delivery, Envelope
from ..errors import (
    LeaseLost,
    MalformedMessage,
    MessageError,
    Retry,
    SignatureError,
    UnknownTask,
)
from ..message import Message
from ..middleware.base import Action, Job, Verdict
from ..outcome import ErrorInfo
from ..states import State

if TYPE_CHECKING:
    from ..app import Conveyor
    from ..task import Task


async def execute(job: Job) -> Verdict:
    """Run one delivery to its end and return how it ended. The outcome is stored before the
    message is acknowledged (at-least-once); LeaseLost means another consumer owns it now."""
    app, delivery = job.app, job.delivery
    chain = app.middleware
    verdict = admit(job) or await chain.before_run(job)
    if verdict is None:
        job.started = app.clock.monotonic()
        verdict = await run(job)
        verdict = await chain.after_run(job, verdict)
    verdict = await chain.before_settle(job, verdict)
    job.ran()
    await settle(delivery, verdict)
    await chain.after_settle(job, verdict)
    return verdict


def admit(job: Job) -> Verdict | None:
    """Decode the message and find its task; a dead-letter verdict if either fails."""
    try:
        job.message, job.task = decode(job.app, job.delivery.envelope)
    except SignatureError as exc:  # unauthenticated: it may not touch any task's record
        return Verdict(Action.DEAD_LETTER, None, reason=f"SignatureError: {exc}")
    except MessageError as exc:
        return Verdict.dead(f"{type(exc).__name__}: {exc}", ErrorInfo.from_exception(exc))
    return None


async def run(job: Job) -> Verdict:
    """Call the task through every ``around_run`` hook; its value or its failure."""
    assert job.task is not None and job.message is not None
    task, message, attempt = job.task, job.message, job.delivery.attempt
    try:
        value = await job.app.middleware.around_run(
            job, lambda: job.runner.call(task, message, attempt, loop_bound=job.loop_bound))
    except (Exception, SystemExit) as exc:  # a task's sys.exit() fails the task, not the worker
        return failed(job, exc)
    return Verdict.success(value)


def failed(job: Job, exc: Exception | SystemExit) -> Verdict:
    """A failure verdict: dead-lettered too when the app says so (retries may change it)."""
    error = ErrorInfo.from_exception(exc.exc if isinstance(exc, Retry) and exc.exc else exc)
    retries = job.message.retries if job.message is not None else 0
    if job.app.conf.dead_letter_failures:
        reason = f"failed after {retries} retries: {error.type}: {error.message}"
        return Verdict(Action.DEAD_LETTER, State.FAILURE, error=error, reason=reason, exc=exc)
    return Verdict(Action.ACK, State.FAILURE, error=error, exc=exc)


def decode(app: Conveyor, envelope: Envelope) -> tuple[Message, Task[Any, Any]]:
    """The message and its task; MessageError for anything a worker cannot run. Size and
    signature are checked before the body is decoded."""
    body = envelope.body
    if len(body) > app.conf.max_message_size + 64:  # + a signature's frame
        raise MalformedMessage(f"body of {len(body):,} bytes exceeds max_message_size")
    if app.signer is not None:
        body = app.signer.verify(body, app.clock.time())
    message = Message.from_dict(app.codec.loads_message(body, envelope.content_type))
    task = app.tasks.get(message.task)
    if task is None:
        known = ", ".join(sorted(app.tasks)) or "none"
        raise UnknownTask(f"no task named {message.task!r} is registered in app {app.name!r}"
                          f" (it knows: {known})")
    return message, task


async def settle(delivery: Delivery, verdict: Verdict) -> None:
    """Settle the delivery as the verdict says, carrying its result record if one is attached."""
    if verdict.action is Action.RETRY:
        await delivery.retry(verdict.delay, verdict.body, result=verdict.result,
                             keep_count=verdict.deferred)
    elif verdict.action is Action.DEAD_LETTER:
        await delivery.dead_letter(verdict.reason, result=verdict.result)
    else:
        await delivery.ack(result=verdict.result)


__all__ = ["LeaseLost", "admit", "decode", "execute", "failed", "run", "settle"]
