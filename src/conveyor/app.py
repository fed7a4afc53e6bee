"""Conveyor: the application object holding configuration, the task registry and the stores."""

from __future__ import annotations

import inspect
import os
from collections.abc import Callable, Coroutine, Iterable, Mapping, Sequence
from datetime import datetime
from typing import (
    TYPE_CHECKING,
    Any,
    Concatenate,
    Literal,
    ParamSpec,
    Protocol,
    TypeVar,
    Unpack,
    overload,
)

from .brokers import Envelope, StoredResult, as_backend, as_broker, open_store
from .clock import SYSTEM, Clock
from .errors import ConfigurationError
from .message import Message, new_id
from .options import TaskOptions, TaskOptionsDict, build_options
from .result import AsyncResult
from .serializers import Codec
from .states import State
from .task import AsyncTask, Task
from .urls import mask_url

if TYPE_CHECKING:
    from .brokers import Broker, ResultBackend
    from .canvas import Signature

P = ParamSpec("P")
R = TypeVar("R")

DEFAULT_BROKER = "sqlite:///conveyor.db"
_PENDING_DATA = b""  # a PENDING record carries no payload; the state column says it all


class _TaskDecorator(Protocol):
    @overload
    def __call__(self, fn: Callable[P, Coroutine[Any, Any, R]]) -> AsyncTask[P, R]: ...
    @overload
    def __call__(self, fn: Callable[P, R]) -> Task[P, R]: ...


class _BoundTaskDecorator(Protocol):
    @overload
    def __call__(self, fn: Callable[Concatenate[Any, P], Coroutine[Any, Any, R]]
                 ) -> AsyncTask[P, R]: ...
    @overload
    def __call__(self, fn: Callable[Concatenate[Any, P], R]) -> Task[P, R]: ...


class Conveyor:
    """A task-queue application: ``app = Conveyor("shop", broker="sqlite:///conveyor.db")``.

    ``broker`` defaults to ``$CONVEYOR_BROKER_URL`` or ``sqlite:///conveyor.db``; ``backend``
    defaults to the broker's store. Stores open lazily, on first use, and reopen after a fork.
    ``serializer`` encodes messages and results; only ``accept_content`` types are decoded
    (pickle is refused unless listed). ``result_ttl`` is how long outcomes are kept (seconds);
    ``lease`` how long a worker may go silent before its tasks go to another (seconds).
    ``clock`` is where every part of the app reads the time (a fake one in tests).
    """

    def __init__(
        self, name: str = "conveyor", broker: str | None = None, backend: str | None = None, *,
        serializer: str = "json", accept_content: Iterable[str] = ("json", "msgpack"),
        default_queue: str = "default", result_ttl: float = 86400.0, lease: float = 30.0,
        dead_letter_failures: bool = True, clock: Clock = SYSTEM,
    ) -> None:
        self.name = name
        self.broker_url = broker or os.environ.get("CONVEYOR_BROKER_URL") or DEFAULT_BROKER
        self.backend_url = backend or os.environ.get("CONVEYOR_RESULT_BACKEND") or self.broker_url
        self.codec = Codec(serializer, accept_content)
        self.default_queue = default_queue
        self.result_ttl = result_ttl
        self.lease = lease
        self.dead_letter_failures = dead_letter_failures
        self.clock = clock
        self.tasks: dict[str, Task[Any, Any]] = {}
        self._stores: dict[str, Broker | ResultBackend] = {}
        self._pid = os.getpid()

    def __repr__(self) -> str:
        return f"<Conveyor {self.name} broker={mask_url(self.broker_url)}>"

    # -- stores ---------------------------------------------------------------------------
    def _store(self, url: str) -> Broker | ResultBackend:
        if self._pid != os.getpid():  # forked: connections and threads do not survive a fork
            self._stores, self._pid = {}, os.getpid()
        if url not in self._stores:
            self._stores[url] = open_store(url, clock=self.clock)
        return self._stores[url]

    @property
    def broker(self) -> Broker:
        """The broker, opened on first use."""
        return as_broker(self._store(self.broker_url))

    @property
    def backend(self) -> ResultBackend:
        """The result backend, opened on first use."""
        return as_backend(self._store(self.backend_url))

    @property
    def shared_store(self) -> bool:
        """True when one store is both broker and result backend (writes can be combined)."""
        return self.broker_url == self.backend_url

    def close(self) -> None:
        """Close every open store."""
        for store in self._stores.values():
            store.close()
        self._stores = {}

    async def aclose(self) -> None:
        """Async form of :meth:`close`."""
        for store in self._stores.values():
            await store.aclose()
        self._stores = {}

    # -- tasks ----------------------------------------------------------------------------
    @overload
    def task(self, fn: Callable[P, Coroutine[Any, Any, R]], /) -> AsyncTask[P, R]: ...
    @overload
    def task(self, fn: Callable[P, R], /) -> Task[P, R]: ...
    @overload
    def task(self, *, bind: Literal[False] = False,
             **options: Unpack[TaskOptionsDict]) -> _TaskDecorator: ...
    @overload
    def task(self, *, bind: Literal[True], **options: Unpack[TaskOptionsDict]
             ) -> _BoundTaskDecorator: ...

    def task(self, *fns: Callable[..., Any], bind: bool = False, **options: Any) -> Any:
        """Register a function as a task: ``@app.task`` or ``@app.task(queue=..., retries=3)``.

        Options are those of :class:`conveyor.options.TaskOptions`, plus ``name`` (default:
        ``module.function``) and ``bind=True`` to receive the task as first argument (for
        ``self.request`` and ``self.retry``).
        """
        def register(func: Callable[..., Any]) -> Task[Any, Any]:
            name = options.get("name") or f"{func.__module__}.{func.__qualname__}"
            opts = build_options(self.default_queue, options)  # type: ignore[arg-type]
            kind = AsyncTask if inspect.iscoroutinefunction(func) else Task
            made: Task[Any, Any] = kind(self, func, name, opts, bind)
            self.tasks[name] = made
            return made

        if len(fns) > 1:
            raise TypeError("app.task takes one function")
        return register(fns[0]) if fns else register

    # -- sending --------------------------------------------------------------------------
    def build_message(
        self, name: str, options: TaskOptions | None, args: tuple[Any, ...],
        kwargs: dict[str, Any], *, countdown: float | None = None,
        eta: datetime | float | None = None, expires: datetime | float | None = None,
        priority: int | None = None, queue: str | None = None, task_id: str | None = None,
    ) -> Message:
        """A message for task ``name`` with per-call options over the task's defaults."""
        now = self.clock.time()
        opts = options or TaskOptions(queue=self.default_queue)
        when = now + countdown if countdown is not None else _epoch(eta)
        expires = expires if expires is not None else opts.expires
        deadline = now + expires if isinstance(expires, int | float) else _epoch(expires)
        prio = opts.priority if priority is None else priority
        if not 0 <= prio <= 9:
            raise ValueError(f"priority must be from 0 to 9, got {prio}")
        return Message(id=task_id or new_id(), task=name, args=args, kwargs=kwargs,
                       queue=queue or opts.queue, priority=prio, eta=when, expires=deadline,
                       created=now)

    def envelope(self, message: Message) -> Envelope:
        """Serialize a message; raises SerializationError here, in the producer."""
        return Envelope(message.id, message.queue, self.codec.dumps(message.to_dict()),
                        self.codec.content_type, message.priority, message.eta)

    def publish(self, messages: Sequence[Message], track: bool = True) -> None:
        """Send messages in one round trip; with ``track`` record them as PENDING."""
        envelopes = [self.envelope(m) for m in messages]
        if not track:
            self.broker.publish(envelopes)
        elif self.shared_store:  # one transaction or round trip where the store can
            self.broker.publish_tracked(envelopes, self._pending(messages),
                                        self._pending_ttl(messages))
        else:
            self.broker.publish(envelopes)
            self.backend.store_many(self._pending(messages), self._pending_ttl(messages))

    async def apublish(self, messages: Sequence[Message], track: bool = True) -> None:
        """Async form of :meth:`publish`."""
        envelopes = [self.envelope(m) for m in messages]
        if not track:
            await self.broker.apublish(envelopes)
        elif self.shared_store:
            await self.broker.apublish_tracked(envelopes, self._pending(messages),
                                               self._pending_ttl(messages))
        else:
            await self.broker.apublish(envelopes)
            await self.backend.astore_many(self._pending(messages), self._pending_ttl(messages))

    @staticmethod
    def _pending(messages: Sequence[Message]) -> list[tuple[str, StoredResult]]:
        return [(m.id, StoredResult(_PENDING_DATA, State.PENDING, 0, False)) for m in messages]

    def _pending_ttl(self, messages: Sequence[Message]) -> float:
        latest = max((m.eta or 0.0 for m in messages), default=0.0)
        return self.result_ttl + max(0.0, latest - self.clock.time())

    def send_task(self, name: str, args: Iterable[Any] = (),
                  kwargs: Mapping[str, Any] | None = None, **options: Any) -> AsyncResult[Any]:
        """Queue task ``name`` without importing its code; options as for ``apply_async``."""
        task = self.tasks.get(name)
        message = self.build_message(name, task.options if task else None, tuple(args),
                                     dict(kwargs or {}), **options)
        self.publish([message])
        return AsyncResult(message.id, self)

    def send_many(self, signatures: Sequence[Signature[R]]) -> list[AsyncResult[R]]:
        """Queue many calls in one round trip; returns their results in order."""
        messages = [self._from_signature(s) for s in signatures]
        self.publish(messages)
        return [AsyncResult(m.id, self) for m in messages]

    def _from_signature(self, sig: Signature[Any]) -> Message:
        task = self.tasks.get(sig.task)
        return self.build_message(sig.task, task.options if task else None, sig.args,
                                  dict(sig.kwargs), **sig.options)

    def AsyncResult(self, task_id: str) -> AsyncResult[Any]:
        """A result handle for any task id."""
        return AsyncResult(task_id, self)


def _epoch(when: datetime | float | None) -> float | None:
    if when is None or isinstance(when, int | float):
        return when
    if when.tzinfo is None:
        raise ConfigurationError("naive datetime given: use an aware datetime (with tzinfo)")
    return when.timestamp()
