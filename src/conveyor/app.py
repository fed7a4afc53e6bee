"""Conveyor: the application object holding configuration, the task registry, the stores and
the middleware every delivery passes through."""

from __future__ import annotations

import inspect
import os
from collections.abc import AsyncIterator, Callable, Coroutine, Iterable, Mapping, Sequence
from datetime import datetime, timedelta
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

from . import sending
from .brokers import Envelope, as_backend, as_broker, open_store
from .clock import SYSTEM, Clock
from .config import Settings, SettingsDict, from_object
from .message import Message
from .middleware import Chain, Middleware, default_middleware
from .options import TaskOptions, TaskOptionsDict, build_options
from .result import AsyncResult
from .serializers import Codec
from .task import AsyncTask, Task
from .urls import mask_url

if TYPE_CHECKING:
    from .brokers import Broker, ResultBackend
    from .canvas import Signature
    from .control.api import Control
    from .events import Event
    from .schedule import Schedule
    from .schedule.entries import CatchUp, Entry, PeriodicDecorator
    from .signing import Signer

P = ParamSpec("P")
R = TypeVar("R")

DEFAULT_BROKER = "sqlite:///conveyor.db"


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
    defaults to the broker's store. Every other setting (``result_ttl``, ``lease``,
    ``serializer``, ...: see :mod:`conveyor.config`) may be given as a keyword, in ``config``,
    as a ``CONVEYOR_*`` environment variable, or later through ``app.conf``.
    ``middleware`` adds features to the execution seam after the built-in ones. ``clock`` is
    where every part of the app reads the time (a fake one in tests). Stores open lazily, on
    first use, and reopen after a fork.
    """

    #: The classes ``@app.task`` makes (an integration may add methods, as Django's
    #: ``delay_on_commit``).
    task_class: type[Task[Any, Any]] = Task
    async_task_class: type[AsyncTask[Any, Any]] = AsyncTask

    def __init__(
        self, name: str = "conveyor", broker: str | None = None, backend: str | None = None, *,
        config: Mapping[str, Any] | None = None, middleware: Iterable[Middleware] = (),
        clock: Clock = SYSTEM, **settings: Unpack[SettingsDict],
    ) -> None:
        self.name = name
        given: dict[str, Any] = {**(config or {}), **settings}
        if broker is not None:
            given["broker_url"] = broker
        if backend is not None:
            given["result_backend"] = backend
        self.conf = Settings(given)
        self.clock = clock
        self.tasks: dict[str, Task[Any, Any]] = {}
        self.periodic_tasks: dict[str, Entry] = {}  # see add_periodic_task, periodic
        self._middleware = [*default_middleware(), *middleware]
        self._chain = Chain(self._middleware)
        self._stores: dict[str, Broker | ResultBackend] = {}
        self._codec: tuple[tuple[str, tuple[str, ...]], Codec] | None = None
        self._signer: tuple[tuple[tuple[str, ...], float | None], Signer | None] | None = None
        self._pid = os.getpid()

    def __repr__(self) -> str:
        return f"<Conveyor {self.name} broker={mask_url(self.broker_url)}>"

    # -- configuration --------------------------------------------------------------------
    def config_from_object(self, source: object | str, namespace: str | None = None) -> None:
        """Read settings from a module (or its dotted path), class or mapping; with
        ``namespace="CONVEYOR"`` only ``CONVEYOR_*`` names (as in a Django settings module)."""
        self.conf.update(from_object(source, namespace))

    @property
    def broker_url(self) -> str:
        return self.conf.broker_url or DEFAULT_BROKER

    @broker_url.setter
    def broker_url(self, url: str) -> None:
        self.conf.broker_url = url

    @property
    def backend_url(self) -> str:
        return self.conf.result_backend or self.broker_url

    @backend_url.setter
    def backend_url(self, url: str) -> None:
        self.conf.result_backend = url

    @property
    def codec(self) -> Codec:
        """The serializer for messages and results, as the settings say now."""
        key = (self.conf.serializer, tuple(self.conf.accept_content))
        if self._codec is None or self._codec[0] != key:
            self._codec = (key, Codec(*key))
        return self._codec[1]

    @property
    def signer(self) -> Signer | None:
        """The message signer when ``signing_keys`` are set (see :mod:`conveyor.signing`)."""
        key = (tuple(self.conf.signing_keys), self.conf.signing_max_age)
        if self._signer is None or self._signer[0] != key:
            from .signing import Signer  # here: hashlib and hmac only for an app that signs

            self._signer = (key, Signer(*key) if key[0] else None)
        return self._signer[1]

    @property
    def result_ttl(self) -> float:
        return float(self.conf.result_ttl)

    @property
    def lease(self) -> float:
        return float(self.conf.lease)

    @property
    def default_queue(self) -> str:
        return str(self.conf.default_queue)

    # -- middleware -----------------------------------------------------------------------
    @property
    def middleware(self) -> Chain:
        """Every feature on the execution seam, built-in ones first."""
        return self._chain

    def add_middleware(self, middleware: Middleware) -> None:
        """Add a feature after those already there (workers started later pick it up)."""
        self._middleware.append(middleware)
        self._chain = Chain(self._middleware)

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

    # -- control --------------------------------------------------------------------------
    @property
    def control(self) -> Control:
        """Remote control of this app's workers: revoke, rate limits, shutdown, ping and
        ``inspect()`` (see :mod:`conveyor.control`)."""
        from .control.api import Control

        return Control(self)

    # -- events ---------------------------------------------------------------------------
    async def events(self, after: str | None = None, *,
                     wait: float = 1.0) -> AsyncIterator[Event]:
        """Follow task and worker events as they happen: ``async for e in app.events(): ...``.

        Without ``after`` it starts with the next event; with an event's ``id`` it resumes right
        after it (``"0"``: from the oldest kept). Raises ConfigurationError when the result
        backend keeps no events.
        """
        from .middleware.events import require_event_log

        log = require_event_log(self)
        cursor = after if after is not None else (await log.last_event_id() or "0")
        while True:
            for event in await log.read_events(cursor, 500, wait):
                cursor = event.id
                yield event

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
            kind = (self.async_task_class if inspect.iscoroutinefunction(func)
                    else self.task_class)
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
        time_limit: float | timedelta | None = None,
        soft_time_limit: float | timedelta | None = None, unique_key: str | None = None,
        unique_for: float | timedelta | None = None,
        message_options: dict[str, Any] | None = None, routing_key: str | None = None,
    ) -> Message:
        """A message for task ``name`` with per-call options over the task's defaults;
        ``message_options`` travel in the message (workflow links, see :mod:`conveyor.canvas`)."""
        return sending.build_message(self, name, options, args, kwargs, countdown=countdown,
                                     eta=eta, expires=expires, priority=priority, queue=queue,
                                     routing_key=routing_key, task_id=task_id,
                                     time_limit=time_limit,
                                     soft_time_limit=soft_time_limit, unique_key=unique_key,
                                     unique_for=unique_for, message_options=message_options)

    def envelope(self, message: Message) -> Envelope:
        """Serialize a message; raises SerializationError here, in the producer, naming the
        task and the argument that cannot be encoded."""
        return sending.envelope(self, message)

    def publish(self, messages: Sequence[Message], track: bool = True) -> None:
        """Send messages in one round trip; with ``track`` record them as PENDING."""
        sending.publish(self, messages, track)

    async def apublish(self, messages: Sequence[Message], track: bool = True) -> None:
        """Async form of :meth:`publish`."""
        await sending.apublish(self, messages, track)

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
        from .canvas.launch import send_many

        return send_many(self, signatures)

    def signature(self, name: str, args: Iterable[Any] = (),
                  kwargs: Mapping[str, Any] | None = None, **options: Any) -> Signature[Any]:
        """A signature of task ``name``, bound to this app (its code need not be imported
        here); ``options`` as for :meth:`conveyor.canvas.Signature.set`."""
        from .canvas import signature

        return signature(name, args, kwargs, app=self, **options)

    # -- periodic tasks -------------------------------------------------------------------
    def add_periodic_task(self, schedule: Schedule | timedelta | float | str,
                          signature: Signature[Any], name: str | None = None, *,
                          catch_up: CatchUp = "once", args: Iterable[Any] = (),
                          kwargs: Mapping[str, Any] | None = None, **options: Any) -> Entry:
        """Send ``signature`` on ``schedule`` from ``conveyor beat`` (Celery's call).

        ``schedule`` is seconds, a timedelta, a cron string (in ``conf.timezone``),
        ``crontab(...)``, ``cron(...)`` or ``every(...)``; ``name`` (default: the signature's
        repr) must be unique; ``catch_up`` is ``"once"``, ``"skip"`` or ``"all"`` (see
        :mod:`conveyor.schedule.entries`); ``args``, ``kwargs`` and publish ``options`` are
        added to the signature's.
        """
        from .schedule.entries import add_periodic_task

        return add_periodic_task(self, schedule, signature, name, catch_up, args, kwargs,
                                 options)

    def periodic(self, *, cron: str | None = None, every: timedelta | float | None = None,
                 schedule: Schedule | None = None, tz: str | None = None,
                 name: str | None = None, catch_up: CatchUp = "once",
                 args: Iterable[Any] = (), kwargs: Mapping[str, Any] | None = None,
                 **task_options: Any) -> PeriodicDecorator:
        """A decorator: ``@app.periodic(cron="0 7 * * *", tz="Europe/Moscow")`` or
        ``@app.periodic(every=timedelta(minutes=5))`` registers the function as a task (with
        ``task_options``, as ``@app.task``) sent on that schedule; on a task, adds the entry.
        ``name`` defaults to the task's name; the rest as for :meth:`add_periodic_task`."""
        from .schedule.entries import periodic

        return periodic(self, schedule, cron, every, tz, name, catch_up, args, kwargs,
                        task_options)

    def autodiscover_tasks(self, packages: Iterable[str] | None = None,
                           related_name: str = "tasks") -> list[str]:
        """Import ``<package>.tasks`` of each package (default: Django's installed apps, when
        Django is set up) so their tasks register; returns the modules imported. A package
        without such a module is passed over; an error inside one is raised. Called before
        Django's apps are loaded it does nothing: the ``conveyor.contrib.django`` app config
        discovers them when Django is ready."""
        from .loader import autodiscover

        return autodiscover(packages, related_name)

    def AsyncResult(self, task_id: str) -> AsyncResult[Any]:
        """A result handle for any task id."""
        return AsyncResult(task_id, self)
