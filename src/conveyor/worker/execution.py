"""The life of one delivery: decode, run, record the outcome, settle. The whole path is here."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from ..brokers import Delivery, Envelope, ResultWrite
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
    if message.expires is not None and app.clock.time() > message.expires:
        await record.settle(delivery.ack, state=State.EXPIRED)
        return
    if not await record.write(State.STARTED):  # already final (revoked or done) or fenced out
        await delivery.ack()
        return
    try:
        value = await runner.call(task, message, delivery.attempt)
    except Exception as exc:
        await fail(app, task, message, delivery, record, exc)
    else:
        await record.settle(delivery.ack, state=State.SUCCESS, value=value)


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
        again = dataclasses.replace(message, retries=message.retries + 1,
                                    eta=app.clock.time() + countdown)
        await record.settle(delivery.retry, countdown, app.envelope(again).body,
                            state=State.RETRY, error=error)
        return
    log.warning("%s[%s] failed: %s: %s", task.name, message.id, error.type, error.message)
    if app.dead_letter_failures:
        reason = f"failed after {message.retries} retries: {error.type}: {error.message}"
        await record.settle(delivery.dead_letter, reason, state=State.FAILURE, error=error)
    else:
        await record.settle(delivery.ack, state=State.FAILURE, error=error)


class Recorder:
    """Writes one run's states, fenced by its attempt; silent for ``ignore_result`` tasks.

    Where the broker is also the result backend, the final state travels with the settle, so
    the store writes both in one atomic step (one commit, fenced by the lease as well).
    """

    def __init__(self, app: Conveyor, task: Task[Any, Any], message: Message, attempt: int):
        self.app, self.task, self.message, self.attempt = app, task, message, attempt
        self.together = app.shared_store

    def _outcome(self, state: State, value: Any, error: ErrorInfo | None) -> ResultWrite | None:
        if self.task.options.ignore_result and state is not State.EXPIRED:
            return None
        outcome = Outcome(state, value, error, self.message.retries, self.task.name)
        stored = outcome.encode(self.app.codec, self.attempt)
        return ResultWrite(self.message.id, stored, self.app.result_ttl)

    async def write(self, state: State, value: Any = None, error: ErrorInfo | None = None) -> bool:
        """Store the state; False when the backend refused it (final already or fenced)."""
        write = self._outcome(state, value, error)
        if write is None:
            return True
        return await self.app.backend.astore(write.task_id, write.record, write.ttl)

    async def settle(self, settle: Callable[..., Awaitable[None]], *args: Any, state: State,
                     value: Any = None, error: ErrorInfo | None = None) -> None:
        """Store ``state`` and settle the delivery with ``settle(*args)``, in that order."""
        write = self._outcome(state, value, error)
        if write is not None and self.together:
            await settle(*args, result=write)
            return
        if write is not None:
            await self.app.backend.astore(write.task_id, write.record, write.ttl)
        await settle(*args)
