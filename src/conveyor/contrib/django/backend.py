"""A backend for Django's tasks framework (``django.tasks`` in Django 6, the ``django_tasks``
package before): Django-native ``@task`` functions run on Conveyor's workers.

```python
TASKS = {"default": {"BACKEND": "conveyor.contrib.django.ConveyorBackend",
                     "QUEUES": ["default", "emails"],        # optional: the queues allowed
                     "OPTIONS": {"retries": 0}}}             # optional: Conveyor task options
```

``task.enqueue(...)`` sends a Conveyor message (``priority`` -100..100 mapped onto 0-9,
``queue_name`` as the queue, ``run_after`` as the ETA); ``get_result(id)`` reads Conveyor's
result backend. A worker started with ``manage.py conveyor worker -Q <queues>`` runs them.
States map as PENDING/RETRY to READY, STARTED to RUNNING, SUCCESS to SUCCESSFUL, and
FAILURE, REVOKED and EXPIRED to FAILED.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, TypeVar

import orjson
from django.utils.module_loading import import_string

from ...brokers import Coordination
from ...errors import ConfigurationError
from ...message import new_id
from ...outcome import Outcome
from ...states import State
from ...task import Task as ConveyorTask
from .app import current_app
from .native import WORKER, normalize_json, runner, signals
from .native import backends as _backends
from .native import exceptions as _exceptions
from .native import tasks as _tasks

T = TypeVar("T")
KEY = "django-tasks:"
_STATUS = {State.PENDING: "READY", State.RETRY: "READY", State.STARTED: "RUNNING",
           State.SUCCESS: "SUCCESSFUL", State.FAILURE: "FAILED", State.REVOKED: "FAILED",
           State.EXPIRED: "FAILED"}


def conveyor_priority(priority: int) -> int:
    """Django's -100..100 onto Conveyor's 0..9 in ten equal bands, order kept (0 is 4)."""
    low, high = _tasks.base.TASK_MIN_PRIORITY, _tasks.base.TASK_MAX_PRIORITY
    return min(9, int((priority - low) * 10 // (high - low + 1)))


class ConveyorBackend(_backends.BaseTaskBackend):
    """Django tasks on Conveyor: results kept, priorities, queues, ``run_after``, async."""

    supports_defer = True
    supports_async_task = True
    supports_get_result = True
    supports_priority = True

    def __init__(self, alias: str, params: dict[str, Any]) -> None:
        super().__init__(alias, params)
        if "QUEUES" not in params:
            self.queues: set[str] = set()  # any queue
        self.task_options = dict(self.options)

    @property
    def app(self) -> Any:
        return current_app()

    def validate_task(self, task: Any) -> None:
        super().validate_task(task)
        self.conveyor_task(task)

    def conveyor_task(self, task: Any) -> ConveyorTask[Any, Any]:
        """The Conveyor task that runs Django task ``task`` (registered on first sight)."""
        app, name = self.app, task.module_path
        found = app.tasks.get(name)
        if found is None:
            found = app.task(name=name, **self.task_options)(runner(name, task.takes_context))
        return found  # type: ignore[no-any-return]

    def enqueue(self, task: Any, args: Any, kwargs: Any) -> Any:
        args, kwargs = self._checked(task, args, kwargs)
        result_id, message = self._message(task, args, kwargs)
        record = self._record(task, args, kwargs, message.created)
        self._coordination().set_value(KEY + result_id, record, self.app.result_ttl)
        self.app.publish([message])
        return self._enqueued(task, result_id, args, kwargs, message.created)

    async def aenqueue(self, task: Any, args: Any, kwargs: Any) -> Any:
        args, kwargs = self._checked(task, args, kwargs)
        result_id, message = self._message(task, args, kwargs)
        record = self._record(task, args, kwargs, message.created)
        await self._coordination().aset_value(KEY + result_id, record, self.app.result_ttl)
        await self.app.apublish([message])
        return self._enqueued(task, result_id, args, kwargs, message.created)

    def get_result(self, result_id: str) -> Any:
        raw = self._coordination().get_value(KEY + result_id)
        record = self.app.backend.get(result_id)
        return self._read(result_id, raw, record)

    async def aget_result(self, result_id: str) -> Any:
        raw = await self._coordination().aget_value(KEY + result_id)
        record = await self.app.backend.aget(result_id)
        return self._read(result_id, raw, record)

    # -- the parts -------------------------------------------------------------------------
    def _checked(self, task: Any, args: Any, kwargs: Any) -> tuple[list[Any], dict[str, Any]]:
        """The task validated and its arguments held to JSON, before anything is sent."""
        self.validate_task(task)
        return normalize_json(list(args)), normalize_json(dict(kwargs))

    def _enqueued(self, task: Any, result_id: str, args: list[Any], kwargs: dict[str, Any],
                  created: float) -> Any:
        result = self._result(task, result_id, "READY", args, kwargs, created)
        signals.task_enqueued.send(type(self), task_result=result)
        return result

    def _message(self, task: Any, args: Any, kwargs: Any) -> tuple[str, Any]:
        self.conveyor_task(task)
        result_id = new_id()
        options = self.app.tasks[task.module_path].options
        message = self.app.build_message(
            task.module_path, options, tuple(args), dict(kwargs), task_id=result_id,
            priority=conveyor_priority(task.priority), queue=task.queue_name,
            eta=task.run_after)
        return result_id, message

    def _coordination(self) -> Coordination:
        backend = self.app.backend
        if not isinstance(backend, Coordination):
            raise ConfigurationError("ConveyorBackend needs a result backend with keys"
                                     " (SQLite, Redis, memory)")
        return backend

    def _record(self, task: Any, args: Any, kwargs: Any, created: float) -> bytes:
        return orjson.dumps({"task": task.module_path, "args": list(args),
                             "kwargs": dict(kwargs), "enqueued_at": created,
                             "priority": task.priority, "queue": task.queue_name})

    def _read(self, result_id: str, raw: bytes | None, record: Any) -> Any:
        if raw is None or record is None:
            raise _exceptions.TaskResultDoesNotExist(result_id)
        data = orjson.loads(raw)
        task = import_string(data["task"])
        found = Outcome.decode(self.app.codec, record)
        result = self._result(task, result_id, _STATUS.get(found.state, "READY"),
                              data["args"], data["kwargs"], data["enqueued_at"], found)
        return result

    def _result(self, task: Any, result_id: str, status: str, args: Any, kwargs: Any,
                enqueued: float, found: Outcome | None = None) -> Any:
        at = _when(found.at) if found is not None and found.at else None
        final = status in ("SUCCESSFUL", "FAILED")
        errors = [] if found is None or found.error is None else [_tasks.base.TaskError(
            exception_class_path=_class_path(found.error.type),
            traceback=found.error.traceback)]
        attempts = 0 if status == "READY" else (found.retries + 1 if found else 1)
        result = _tasks.TaskResult(
            task=task, id=result_id, status=_tasks.TaskResultStatus[status],
            enqueued_at=_when(enqueued), started_at=at if status != "READY" else None,
            finished_at=at if final else None, last_attempted_at=at if attempts else None,
            args=list(args), kwargs=dict(kwargs), backend=self.alias, errors=errors,
            worker_ids=[WORKER] * attempts)
        if status == "SUCCESSFUL" and found is not None:
            object.__setattr__(result, "_return_value", found.value)
        return result


def _when(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)


def _class_path(name: str) -> str:
    return name if "." in name else f"builtins.{name}"
