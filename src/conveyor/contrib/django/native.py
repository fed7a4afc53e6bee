"""A Django-native task (``django.tasks``, or the ``django_tasks`` package before Django 6) as
a worker runs it: the function a Conveyor task calls, with the ``TaskContext`` Django passes,
the ``task_started`` / ``task_finished`` signals Django's backends send, and return values held
to JSON as Django asks."""

from __future__ import annotations

import importlib
import importlib.util
import traceback
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any

from django.utils.module_loading import import_string

from ...errors import ConfigurationError
from ...message import new_id
from ...task import _current

_NAME = "django.tasks" if importlib.util.find_spec("django.tasks") else "django_tasks"
try:
    tasks: Any = importlib.import_module(_NAME)
    backends: Any = importlib.import_module(f"{_NAME}.backends.base")
    exceptions: Any = importlib.import_module(f"{_NAME}.exceptions")
    signals: Any = importlib.import_module(f"{_NAME}.signals")
    _json: Any = importlib.import_module(
        "django.utils.json" if _NAME == "django.tasks" else "django_tasks.utils")
except ImportError as exc:  # pragma: no cover
    raise ConfigurationError("ConveyorBackend needs django.tasks or django-tasks") from exc

WORKER = "conveyor"


def normalize_json(value: Any) -> Any:
    """Django's own check: lists, dicts, str, numbers, bools and None; TypeError otherwise."""
    return _json.normalize_json(value)


def runner(module_path: str, takes_context: bool) -> Callable[..., Any]:
    """The function a worker runs for Django task ``module_path``."""

    def run(*args: Any, **kwargs: Any) -> Any:
        return run_native(import_string(module_path), takes_context, args, kwargs)

    run.__name__ = run.__qualname__ = module_path.rpartition(".")[2]
    run.__module__ = module_path.rpartition(".")[0]
    return run


def run_native(task: Any, takes_context: bool, args: tuple[Any, ...],
               kwargs: dict[str, Any]) -> Any:
    """Call the task as Django's backends do: signals around it, its value made JSON."""
    result = running_result(task, args, kwargs)
    signals.task_started.send(sender=_backend_class(), task_result=result)
    try:
        call_args = (tasks.TaskContext(task_result=result), *args) if takes_context else args
        value = normalize_json(task.call(*call_args, **kwargs))
    except BaseException as exc:
        _finish(result, "FAILED", exc)
        raise
    _finish(result, "SUCCESSFUL")
    return value


def running_result(task: Any, args: Iterable[Any], kwargs: dict[str, Any]) -> Any:
    """The ``TaskResult`` of the run in progress, as its ``TaskContext`` shows it."""
    request = _current.get()
    attempt = request.attempt if request is not None else 1
    now = datetime.now(UTC)
    return tasks.TaskResult(
        task=task, id=request.id if request else new_id(),
        status=tasks.TaskResultStatus.RUNNING, enqueued_at=None, started_at=now,
        finished_at=None, last_attempted_at=now, args=list(args), kwargs=dict(kwargs),
        backend=task.backend, errors=[], worker_ids=[WORKER] * attempt)


def _finish(result: Any, status: str, exc: BaseException | None = None) -> None:
    object.__setattr__(result, "status", tasks.TaskResultStatus[status])
    object.__setattr__(result, "finished_at", datetime.now(UTC))
    if exc is not None:
        result.errors.append(tasks.base.TaskError(
            exception_class_path=f"{type(exc).__module__}.{type(exc).__qualname__}",
            traceback="".join(traceback.format_exception(exc))))
    signals.task_finished.send(sender=_backend_class(), task_result=result)


def _backend_class() -> type:
    from .backend import ConveyorBackend

    return ConveyorBackend
