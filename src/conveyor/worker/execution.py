"""The life of one delivery: decode, run, record the outcome, settle. The whole path is here."""

from __future__ import annotations

import dataclasses
import logging
import time
from typing import TYPE_CHECKING, Any

from ..brokers import Delivery, Envelope
from ..errors import MessageError, Retry, UnknownTask
from ..message import Message
from ..outcome import ErrorInfo, Outcome
from ..states import State

if TYPE_CHECKING:
    from ..app import Conveyor
    from ..task import Task
    from .runner import Runner

log = logging.getLogger("conveyor.worker")


async def execute(app: Conveyor, delivery: Delivery, runner: Runner) -> None:
    """Run one delivery to its end. Outcomes are stored before the ack (at-least-once)."""
    try:
        message, task = decode(app, delivery.envelope)
    except MessageError as exc:
        log.warning("dead-lettering %s: %s", delivery.envelope.id, exc)
        await delivery.dead_letter(f"{type(exc).__name__}: {exc}")
        return
    record = Recorder(app, task, message, delivery.attempt)
    if message.expires is not None and time.time() > message.expires:
        await record.write(State.EXPIRED)
        await delivery.ack()
        return
    if not await record.write(State.STARTED):  # already final (revoked or done) or fenced out
        await delivery.ack()
        return
    try:
        value = await runner.call(task, message, delivery.attempt)
    except Exception as exc:
        await fail(app, task, message, delivery, record, exc)
    else:
        await record.write(State.SUCCESS, value=value)
        await delivery.ack()


def decode(app: Conveyor, envelope: Envelope) -> tuple[Message, Task[Any, Any]]:
    """The message and its task; MessageError for anything a worker cannot run."""
    message = Message.from_dict(app.codec.loads(envelope.body, envelope.content_type))
    task = app.tasks.get(message.task)
    if task is None:
        raise UnknownTask(f"no task named {message.task!r} is registered in app {app.name!r}")
    return message, task


async def fail(app: Conveyor, task: Task[Any, Any], message: Message, delivery: Delivery,
               record: Recorder, exc: Exception) -> None:
    """Retry later if the policy says so; otherwise record FAILURE and dead-letter or ack."""
    countdown = task.options.retry_countdown(exc, message.retries)
    error = ErrorInfo.from_exception(exc.exc if isinstance(exc, Retry) and exc.exc else exc)
    if countdown is not None:
        log.info("retrying %s[%s] in %.2fs: %s", task.name, message.id, countdown, error.message)
        await record.write(State.RETRY, error=error)
        again = dataclasses.replace(message, retries=message.retries + 1,
                                    eta=time.time() + countdown)
        await delivery.retry(countdown, app.envelope(again).body)
        return
    log.warning("%s[%s] failed: %s: %s", task.name, message.id, error.type, error.message)
    await record.write(State.FAILURE, error=error)
    if app.dead_letter_failures:
        await delivery.dead_letter(f"failed after {message.retries} retries: "
                                   f"{error.type}: {error.message}")
    else:
        await delivery.ack()


class Recorder:
    """Writes one run's states, fenced by its attempt; silent for ``ignore_result`` tasks."""

    def __init__(self, app: Conveyor, task: Task[Any, Any], message: Message, attempt: int):
        self.app, self.task, self.message, self.attempt = app, task, message, attempt

    async def write(self, state: State, value: Any = None, error: ErrorInfo | None = None) -> bool:
        """Store the state; False when the backend refused it (final already or fenced)."""
        if self.task.options.ignore_result and state is not State.EXPIRED:
            return True
        outcome = Outcome(state, value, error, self.message.retries, self.task.name)
        stored = outcome.encode(self.app.codec, self.attempt)
        return await self.app.backend.astore(self.message.id, stored, self.app.result_ttl)
