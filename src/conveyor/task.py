"""Task[P, R]: a function registered with an app, callable in-process or sent to workers.

``delay`` and ``apply_async`` are typed from the function's signature (ParamSpec), and the
AsyncResult they return is typed with its return value, so ``mypy`` rejects
``send_email.delay("x")`` and knows ``send_email.delay(1, "hi").get()`` is a ``str``.
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable, Coroutine, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Generic, NoReturn, ParamSpec, TypeVar

from . import sending
from .errors import Retry
from .options import TaskOptions
from .result import AsyncResult

if TYPE_CHECKING:
    from .app import Conveyor
    from .canvas import Canvas, Signature

P = ParamSpec("P")
R = TypeVar("R")


@dataclass(frozen=True, slots=True)
class Request:
    """The running task's context, available as ``self.request`` in ``bind=True`` tasks."""

    id: str
    task: str
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = field(default_factory=dict)
    retries: int = 0
    attempt: int = 1
    queue: str = "default"
    eta: float | None = None
    options: dict[str, Any] = field(default_factory=dict)

    # Where the run sits in a workflow, and when a periodic run was due (see conveyor.canvas
    # and conveyor.schedule.beat): read from the message's options.
    @property
    def parent_id(self) -> str | None:
        """The task whose success sent this one (the previous step of a chain), or None."""
        return self.options.get("parent_id")

    @property
    def root_id(self) -> str:
        """The id of the workflow this run belongs to (its first task, group or chord)."""
        return str(self.options.get("root_id", self.id))

    @property
    def group_id(self) -> str | None:
        """The group or chord whose member this run is, or None."""
        return self.options.get("group_id")

    @property
    def scheduled_for(self) -> datetime | None:
        """For a periodic run: the tick it was sent for (aware, UTC), not when it was sent."""
        at = self.options.get("scheduled_for")
        return None if at is None else datetime.fromtimestamp(at, UTC)


_current: contextvars.ContextVar[Request | None] = contextvars.ContextVar(
    "conveyor_request", default=None)


class Task(Generic[P, R]):
    """A registered task. Call it to run in-process; ``delay`` to run it on a worker."""

    def __init__(self, app: Conveyor, fn: Callable[..., Any], name: str, options: TaskOptions,
                 bind: bool = False) -> None:
        self.app = app
        self.fn = fn
        self.name = name
        self.options = options
        self.bind = bind
        self.__doc__ = fn.__doc__
        self.__wrapped__ = fn

    def __repr__(self) -> str:
        return f"<Task {self.name} queue={self.options.queue}>"

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        """Run the function here and now, as a plain call."""
        return self.fn(self, *args, **kwargs) if self.bind else self.fn(*args, **kwargs)  # type: ignore[no-any-return]

    def run(self, *args: Any, **kwargs: Any) -> Any:
        """Used by workers: the function's own return (a coroutine for async tasks)."""
        return self.fn(self, *args, **kwargs) if self.bind else self.fn(*args, **kwargs)

    @property
    def is_async(self) -> bool:
        return False

    def delay(self, *args: P.args, **kwargs: P.kwargs) -> AsyncResult[R]:
        """Queue a run with these arguments; returns at once."""
        return self.apply_async(args, kwargs)

    async def adelay(self, *args: P.args, **kwargs: P.kwargs) -> AsyncResult[R]:
        """Async form of :meth:`delay`, for producers on an event loop (FastAPI)."""
        return await self.aapply_async(args, kwargs)

    def apply_async(
        self, args: Iterable[Any] = (), kwargs: Mapping[str, Any] | None = None, *,
        countdown: float | None = None, eta: datetime | float | None = None,
        expires: datetime | float | None = None, priority: int | None = None,
        queue: str | None = None, routing_key: str | None = None,
        task_id: str | None = None, time_limit: float | timedelta | None = None,
        soft_time_limit: float | timedelta | None = None, unique_key: str | None = None,
        unique_for: float | timedelta | None = None,
        link: Canvas[Any] | Sequence[Canvas[Any]] | None = None,
        link_error: Canvas[Any] | Sequence[Canvas[Any]] | None = None,
    ) -> AsyncResult[R]:
        """Queue a run with options: ``countdown`` seconds or ``eta`` (datetime or epoch) to
        delay it, ``expires`` (seconds from now, or datetime/epoch) after which it is not run,
        ``priority`` 0-9 (9 first), another ``queue``, a ``routing_key`` (RabbitMQ's
        exchanges, see :mod:`conveyor.routingkeys`), a chosen ``task_id``; ``time_limit`` and
        ``soft_time_limit`` (seconds or timedelta) for this run; ``unique_key`` to return the
        result of a run with the same key still pending or running instead of queueing a second
        one, for at most ``unique_for`` (default: the task's, else the app's ``unique_for``);
        ``link`` is sent with the result when it succeeds, ``link_error`` with its id when it
        fails for good."""
        if link is not None or link_error is not None:
            return self.s(*args, **(kwargs or {})).set(
                link=link, link_error=link_error, **_given(
                    countdown=countdown, eta=eta, expires=expires, priority=priority,
                    queue=queue, routing_key=routing_key, task_id=task_id,
                    time_limit=time_limit,
                    soft_time_limit=soft_time_limit, unique_key=unique_key,
                    unique_for=unique_for)).apply_async()
        message = self.app.build_message(
            self.name, self.options, tuple(args), dict(kwargs or {}), countdown=countdown,
            eta=eta, expires=expires, priority=priority, queue=queue,
            routing_key=routing_key, task_id=task_id,
            time_limit=time_limit, soft_time_limit=soft_time_limit, unique_key=unique_key,
            unique_for=unique_for)
        self.app.publish([message], track=not self.options.ignore_result)
        return AsyncResult(message.id, self.app)

    async def aapply_async(
        self, args: Iterable[Any] = (), kwargs: Mapping[str, Any] | None = None, *,
        countdown: float | None = None, eta: datetime | float | None = None,
        expires: datetime | float | None = None, priority: int | None = None,
        queue: str | None = None, routing_key: str | None = None,
        task_id: str | None = None, time_limit: float | timedelta | None = None,
        soft_time_limit: float | timedelta | None = None, unique_key: str | None = None,
        unique_for: float | timedelta | None = None,
        link: Canvas[Any] | Sequence[Canvas[Any]] | None = None,
        link_error: Canvas[Any] | Sequence[Canvas[Any]] | None = None,
    ) -> AsyncResult[R]:
        """Async form of :meth:`apply_async`."""
        if link is not None or link_error is not None:
            return await self.s(*args, **(kwargs or {})).set(
                link=link, link_error=link_error, **_given(
                    countdown=countdown, eta=eta, expires=expires, priority=priority,
                    queue=queue, routing_key=routing_key, task_id=task_id,
                    time_limit=time_limit,
                    soft_time_limit=soft_time_limit, unique_key=unique_key,
                    unique_for=unique_for)).aapply_async()
        message = self.app.build_message(
            self.name, self.options, tuple(args), dict(kwargs or {}), countdown=countdown,
            eta=eta, expires=expires, priority=priority, queue=queue,
            routing_key=routing_key, task_id=task_id,
            time_limit=time_limit, soft_time_limit=soft_time_limit, unique_key=unique_key,
            unique_for=unique_for)
        await self.app.apublish([message], track=not self.options.ignore_result)
        return AsyncResult(message.id, self.app)

    def map(self, calls: Iterable[Iterable[Any]]) -> list[AsyncResult[R]]:
        """Queue one run per argument tuple in a single round trip (bulk enqueue)."""
        messages = sending.build_messages(self.app, self.name, self.options, calls)
        self.app.publish(messages, track=not self.options.ignore_result)
        return [AsyncResult(m.id, self.app) for m in messages]

    def s(self, *args: Any, **kwargs: Any) -> Signature[R]:
        """A signature: this task with (some of) its arguments, for chains, groups, chords."""
        from .canvas import Signature

        return Signature(self.name, args, kwargs, app=self.app)

    def si(self, *args: Any, **kwargs: Any) -> Signature[R]:
        """An immutable signature: in a chain it ignores the previous step's result."""
        from .canvas import Signature

        return Signature(self.name, args, kwargs, app=self.app, immutable=True)

    @property
    def request(self) -> Request:
        """The context of the run in progress (only inside a worker or a test helper)."""
        current = _current.get()
        if current is None:
            raise RuntimeError(f"{self.name}: no task is running in this context")
        return current

    def retry(self, countdown: float | None = None, exc: BaseException | None = None,
              max_retries: int | None = None) -> NoReturn:
        """Ask the worker to run this task again after ``countdown`` seconds (default: the
        task's retry policy). Raises :class:`Retry`; once retries are exhausted the task fails
        with ``exc`` (or the Retry itself)."""
        raise Retry(countdown, exc, max_retries)


class AsyncTask(Task[P, R]):
    """A task whose function is ``async def``; a plain call returns the coroutine."""

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> Coroutine[Any, Any, R]:  # type: ignore[override]
        return self.run(*args, **kwargs)  # type: ignore[no-any-return]

    @property
    def is_async(self) -> bool:
        return True


def _given(**options: Any) -> dict[str, Any]:
    return {k: v for k, v in options.items() if v is not None}


def set_request(request: Request | None) -> contextvars.Token[Request | None]:
    """Make ``request`` current for this context (the worker calls it around each run)."""
    return _current.set(request)
