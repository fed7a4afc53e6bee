"""The execution seam: what a feature sees of one delivery, and the hooks it may implement.

A delivery's life (see :mod:`conveyor.worker.execution`)::

    decode --> before_run hooks --(none decided)--> around_run hooks --> the task
                   |                                                        |
                   +------------- a Verdict ---------- after_run hooks <----+
                                                           |
                         before_settle hooks --> the settle (ack, retry, dead-letter)
                                                           |
                         after_settle (after_success / failure / retry / skip / dead_letter)

A :class:`Verdict` says how the delivery is settled and which state its result records. Features
return a new verdict to change that (retries turn a failure into a retry; expiry skips a run).
Hooks a middleware does not override are never called, so an idle feature costs nothing.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import TYPE_CHECKING, Any

from ..states import State

if TYPE_CHECKING:
    from ..app import Conveyor
    from ..brokers import Delivery, ResultWrite
    from ..message import Message
    from ..outcome import ErrorInfo
    from ..task import Task
    from ..worker.runner import Runner
    from ..worker.worker import Worker


class Action(Enum):
    """How a delivery is settled."""

    ACK = "ack"
    RETRY = "retry"
    DEAD_LETTER = "dead_letter"


@dataclass(frozen=True, slots=True)
class Verdict:
    """The end of one delivery: how to settle it and what its result records.

    ``state`` None records nothing. ``delay`` and ``body`` are for a retry, ``reason`` for a
    dead-letter; ``result`` is the record a feature attached to travel with the settle.
    """

    action: Action
    state: State | None
    value: Any = None
    error: ErrorInfo | None = None
    delay: float = 0.0
    body: bytes | None = None
    reason: str = ""
    result: ResultWrite | None = None
    exc: BaseException | None = field(default=None, compare=False, repr=False)

    @classmethod
    def success(cls, value: Any) -> Verdict:
        return cls(Action.ACK, State.SUCCESS, value)

    @classmethod
    def skip(cls, state: State | None) -> Verdict:
        """Not run: acknowledged, recording ``state`` (EXPIRED, REVOKED) or nothing."""
        return cls(Action.ACK, state)

    @classmethod
    def defer(cls, delay: float, reason: str) -> Verdict:
        """Not run yet: the message comes back after ``delay`` seconds with its body unchanged,
        recording nothing. Not a retry of the task (its retries stay as they are); features that
        wait for a free rate or slot without holding a worker slot use it."""
        return cls(Action.RETRY, None, delay=delay, reason=reason)

    @property
    def deferred(self) -> bool:
        """True for a :meth:`defer` verdict."""
        return self.action is Action.RETRY and self.state is None

    @classmethod
    def dead(cls, reason: str, error: ErrorInfo | None) -> Verdict:
        """Given up: dead-lettered with ``reason``, its result FAILURE with ``error``."""
        return cls(Action.DEAD_LETTER, State.FAILURE, error=error, reason=reason)

    def replace(self, **changes: Any) -> Verdict:
        return dataclasses.replace(self, **changes)

    def with_result(self, result: ResultWrite | None) -> Verdict:
        """This verdict carrying ``result`` to the settle: ``replace(result=...)``, spelled out
        as it runs for every task (a third of the cost of ``dataclasses.replace``)."""
        return Verdict(self.action, self.state, self.value, self.error, self.delay, self.body,
                       self.reason, result, self.exc)


@dataclass(slots=True)
class Job:
    """One delivery on its way through the seam. ``message`` and ``task`` are None when the
    body could not be decoded or names no registered task. ``scratch`` is for features to keep
    per-delivery notes in (keyed by their own name)."""

    app: Conveyor
    delivery: Delivery
    runner: Runner
    worker: Worker | None = None
    message: Message | None = None
    task: Task[Any, Any] | None = None
    started: float = 0.0  # clock.monotonic() when the run began
    scratch: dict[str, Any] = field(default_factory=dict)
    #: Called once the run is over and its outcome decided, before the settle: a worker frees
    #: the task's slot there, so the next task starts while this one's settle is on its way.
    on_ran: Callable[[], None] | None = None
    #: Set in ``around_run`` by a feature that needs the event loop while the task runs (a
    #: timer, a renewal): the task then never runs on the loop's thread (see
    #: :mod:`conveyor.worker.inline`).
    loop_bound: bool = False

    def ran(self) -> None:
        if self.on_ran is not None:
            self.on_ran()
            self.on_ran = None

    @property
    def id(self) -> str:
        return self.delivery.envelope.id

    @property
    def name(self) -> str:
        """The task's name as the message gives it ("?" for an undecodable body)."""
        return self.message.task if self.message is not None else "?"


#: ``around_run`` receives the next step of the chain and returns the task's value.
Call = Callable[[], Awaitable[Any]]


class Middleware:
    """Base class of features on the execution seam; override only the hooks you need.

    Producer side (sync and async producers alike): :meth:`before_publish` may change each
    message; :meth:`after_publish` sees what was sent. Worker side, all async: see the module
    docstring. ``after_settle`` calls the five specific ``after_*`` hooks by default, so a
    reporter overrides just ``after_failure``.
    """

    def before_publish(self, app: Conveyor, message: Message) -> Message:
        return message

    def after_publish(self, app: Conveyor, messages: Sequence[Message]) -> None:
        return None

    async def worker_start(self, worker: Worker) -> None:
        return None

    async def worker_stop(self, worker: Worker) -> None:
        return None

    async def before_run(self, job: Job) -> Verdict | None:
        """Return a verdict to settle the delivery without running the task."""
        return None

    async def around_run(self, job: Job, call: Call) -> Any:
        """Wrap the run: ``return await call()``, with whatever the feature needs around it."""
        return await call()

    async def after_run(self, job: Job, verdict: Verdict) -> Verdict:
        return verdict

    async def before_settle(self, job: Job, verdict: Verdict) -> Verdict:
        return verdict

    async def after_settle(self, job: Job, verdict: Verdict) -> None:
        if verdict.deferred:
            await self.after_defer(job, verdict.delay, verdict.reason)
        elif verdict.action is Action.RETRY:
            await self.after_retry(job, verdict.delay, verdict.error)
        elif verdict.state is State.SUCCESS:
            await self.after_success(job, verdict.value)
        elif verdict.state is State.FAILURE and verdict.error is not None:
            await self.after_failure(job, verdict.error)
        else:
            await self.after_skip(job, verdict.state)
        if verdict.action is Action.DEAD_LETTER:
            await self.after_dead_letter(job, verdict.reason, verdict.error)

    async def after_success(self, job: Job, value: Any) -> None:
        return None

    async def after_failure(self, job: Job, error: ErrorInfo) -> None:
        """The task's result is FAILURE: it raised with no retry left, ran past its time limit,
        reached its delivery limit, or could not be run (undecodable, unknown task)."""
        return None

    async def after_retry(self, job: Job, delay: float, error: ErrorInfo | None) -> None:
        return None

    async def after_defer(self, job: Job, delay: float, reason: str) -> None:
        """Not run yet: put back for ``delay`` seconds (a rate limit, a busy concurrency key)."""
        return None

    async def after_skip(self, job: Job, state: State | None) -> None:
        """Not run: expired, revoked, already finished (``state`` says which, if any)."""
        return None

    async def after_dead_letter(self, job: Job, reason: str, error: ErrorInfo | None) -> None:
        """The message went to the dead-letter queue (after ``after_failure`` when the result
        is a FAILURE)."""
        return None


_AFTER_SETTLE = ("after_settle", "after_success", "after_failure", "after_retry", "after_skip",
                 "after_dead_letter", "after_defer")

#: The option a ``before_publish`` hook sets (with the message's id changed to the queued
#: one's) to say "this call is already queued": the producer then sends nothing and returns the
#: queued task's result handle (unique tasks use it).
DUPLICATE_OF = "duplicate_of"


def is_duplicate(message: Message) -> bool:
    """True when a ``before_publish`` hook marked ``message`` as already queued."""
    return DUPLICATE_OF in message.options


def overrides(middleware: Middleware, *hooks: str) -> bool:
    """True if ``middleware`` implements any of ``hooks`` itself."""
    kind = type(middleware)
    return any(getattr(kind, h) is not getattr(Middleware, h) for h in hooks)


class Chain:
    """The app's middleware in order, each hook list holding only those that implement it."""

    def __init__(self, middleware: Sequence[Middleware]) -> None:
        self.all = list(middleware)
        pick = self._implementing
        self.publishing = pick("before_publish")
        self.published = pick("after_publish")
        self.starting, self.stopping = pick("worker_start"), pick("worker_stop")
        self.admitting, self.wrapping = pick("before_run"), pick("around_run")
        self.judging, self.settling = pick("after_run"), pick("before_settle")
        self.observing = [m for m in self.all if overrides(m, *_AFTER_SETTLE)]

    def _implementing(self, hook: str) -> list[Middleware]:
        return [m for m in self.all if overrides(m, hook)]

    def before_publish(self, app: Conveyor, message: Message) -> Message:
        for m in self.publishing:
            message = m.before_publish(app, message)
        return message

    def after_publish(self, app: Conveyor, messages: Sequence[Message]) -> None:
        for m in self.published:
            m.after_publish(app, messages)

    async def before_run(self, job: Job) -> Verdict | None:
        for m in self.admitting:
            verdict = await m.before_run(job)
            if verdict is not None:
                return verdict
        return None

    def around_run(self, job: Job, call: Call) -> Awaitable[Any]:
        """``call`` wrapped by every ``around_run``, the first middleware outermost."""
        for m in reversed(self.wrapping):
            call = _wrap(m, job, call)
        return call()

    async def after_run(self, job: Job, verdict: Verdict) -> Verdict:
        for m in self.judging:
            verdict = await m.after_run(job, verdict)
        return verdict

    async def before_settle(self, job: Job, verdict: Verdict) -> Verdict:
        for m in self.settling:
            verdict = await m.before_settle(job, verdict)
        return verdict

    async def after_settle(self, job: Job, verdict: Verdict) -> None:
        for m in self.observing:
            await m.after_settle(job, verdict)

    async def worker_start(self, worker: Worker) -> None:
        for m in self.starting:
            await m.worker_start(worker)

    async def worker_stop(self, worker: Worker) -> None:
        for m in reversed(self.stopping):
            await m.worker_stop(worker)


def _wrap(middleware: Middleware, job: Job, inner: Call) -> Call:
    return lambda: middleware.around_run(job, inner)
