"""The Django project's Conveyor app, its tasks with ``delay_on_commit``, and
``shared_task`` for reusable apps."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping
from typing import Any, ParamSpec, TypeVar

from ...app import Conveyor as _Conveyor
from ...errors import ConfigurationError
from ...message import new_id
from ...middleware.django_db import DjangoConnections
from ...result import AsyncResult
from ...task import AsyncTask, Task

P = ParamSpec("P")
R = TypeVar("R")


class DjangoTask(Task[P, R]):
    """A task with ``delay_on_commit``: sent only once the current transaction commits."""

    def delay_on_commit(self, *args: P.args, **kwargs: P.kwargs) -> AsyncResult[R]:
        """Queue a run when the current database transaction commits (at once outside one);
        nothing is sent if it rolls back. The result's id is known now; it reads UNKNOWN until
        the commit. For a send that survives the process dying right after the commit, use
        :mod:`conveyor.contrib.outbox`."""
        return self.apply_async_on_commit(args, kwargs)

    def apply_async_on_commit(self, args: Iterable[Any] = (),
                              kwargs: Mapping[str, Any] | None = None, *,
                              using: str | None = None, **options: Any) -> AsyncResult[R]:
        """:meth:`apply_async` on ``transaction.on_commit`` of database ``using``."""
        from django.db import transaction

        task_id = options.pop("task_id", None) or new_id()
        call_args, call_kwargs = tuple(args), dict(kwargs or {})
        transaction.on_commit(lambda: self.apply_async(call_args, call_kwargs, task_id=task_id,
                                                       **options), using=using)
        return AsyncResult(task_id, self.app)


class DjangoAsyncTask(AsyncTask[P, R], DjangoTask[P, R]):
    """An ``async def`` task with ``delay_on_commit``."""


class Conveyor(_Conveyor):
    """A :class:`conveyor.Conveyor` for Django projects: tasks get ``delay_on_commit`` and
    workers close stale database connections between tasks."""

    task_class = DjangoTask
    async_task_class = DjangoAsyncTask

    def __init__(self, name: str = "django", broker: str | None = None,
                 backend: str | None = None, **options: Any) -> None:
        middleware = [*options.pop("middleware", ()), DjangoConnections()]
        super().__init__(name, broker, backend, middleware=middleware, **options)


_lock = threading.Lock()
_apps: dict[int, _Conveyor] = {}


def current_app() -> _Conveyor:
    """The project's app: the one ``settings.CONVEYOR["app"]`` names, or one made from
    ``settings.CONVEYOR`` on first use (one per settings object)."""
    from django.conf import settings

    key = id(settings._wrapped) if hasattr(settings, "_wrapped") else 0
    with _lock:
        if key not in _apps:
            _apps[key] = _from_settings(dict(getattr(settings, "CONVEYOR", None) or {}))
        return _apps[key]


def _from_settings(given: dict[str, Any]) -> _Conveyor:
    path = given.pop("app", None)
    if path is not None:
        from ...loader import load_app

        return load_app(str(path))
    name = str(given.pop("name", "django"))
    known = {k.lower(): v for k, v in given.items()}
    try:
        return Conveyor(name, config=known)
    except TypeError as exc:
        raise ConfigurationError(f"settings.CONVEYOR: {exc}") from exc


def shared_task(*fns: Callable[..., Any], **options: Any) -> Any:
    """``@app.task`` of the project's app, for reusable Django apps that cannot import it:
    ``@shared_task`` or ``@shared_task(queue="emails", retries=3)``."""
    return current_app().task(*fns, **options)
