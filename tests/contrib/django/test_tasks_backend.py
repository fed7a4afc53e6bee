"""ConveyorBackend for Django's tasks framework. The cases follow the django-tasks package's
own backend tests (enqueue, aenqueue, failures, get_result, refresh, missing results, queues,
priorities, run_after, context), run here against Conveyor's worker path."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from django.db import transaction

from conveyor.brokers import queue_admin
from conveyor.contrib.django import ConveyorBackend, current_app
from conveyor.contrib.django.backend import conveyor_priority
from conveyor.testing import run_queued

try:
    from django.tasks import TaskResultStatus, default_task_backend, task_backends
    from django.tasks.exceptions import InvalidTaskError, TaskResultDoesNotExist
except ImportError:
    from django_tasks import TaskResultStatus, default_task_backend, task_backends
    from django_tasks.exceptions import InvalidTaskError, TaskResultDoesNotExist


@pytest.fixture
def tasks(project: Path) -> Any:
    from tests.contrib.django.reports import tasks as module

    return module


def test_the_backend_is_conveyors_and_says_what_it_supports(project: Path) -> None:
    backend = task_backends["default"]
    assert isinstance(backend, ConveyorBackend) and backend.alias == "default"
    assert backend.supports_defer and backend.supports_async_task
    assert backend.supports_get_result and backend.supports_priority


def test_enqueue_gives_a_ready_result(tasks: Any) -> None:
    for task in (tasks.django_add, tasks.django_async_double):
        result = task.enqueue(1, **({"y": 3} if task is tasks.django_add else {}))
        assert result.status == TaskResultStatus.READY and not result.is_finished
        assert result.started_at is None and result.last_attempted_at is None
        assert result.finished_at is None and result.enqueued_at is not None
        with pytest.raises(ValueError, match="Task has not finished yet"):
            result.return_value  # noqa: B018
        assert result.task == task and result.args == [1] and result.attempts == 0
    run_queued(current_app())


def test_aenqueue_and_aget_result(tasks: Any) -> None:
    async def both() -> tuple[Any, Any]:
        result = await tasks.django_add.aenqueue(2, 2)
        return result, await default_task_backend.aget_result(result.id)

    result, again = asyncio.run(both())
    assert result == again and again.status == TaskResultStatus.READY
    run_queued(current_app())
    asyncio.run(result.arefresh())
    assert result.return_value == 4


def test_refresh_reads_what_the_worker_did(tasks: Any) -> None:
    result = tasks.django_add.enqueue(40, 2)
    assert default_task_backend.get_result(result.id) == result
    run_queued(current_app())
    assert result.status == TaskResultStatus.READY  # until refreshed
    result.refresh()
    assert result.status == TaskResultStatus.SUCCESSFUL and result.is_finished
    assert result.return_value == 42 and result.attempts == 1
    assert result.started_at is not None and result.finished_at is not None
    assert result.finished_at >= result.started_at >= result.enqueued_at


def test_a_failure_carries_the_exception_class_and_traceback(tasks: Any) -> None:
    result = tasks.django_fail.enqueue("This task failed due to ValueError")
    run_queued(current_app(), raise_errors=False)
    result.refresh()
    assert result.status == TaskResultStatus.FAILED and result.is_finished
    with pytest.raises(ValueError, match="Task failed"):
        result.return_value  # noqa: B018
    assert result.errors[0].exception_class is ValueError
    assert result.errors[0].traceback.endswith(
        "ValueError: This task failed due to ValueError\n")
    assert result.attempts == 1 and result.args == ["This task failed due to ValueError"]


def test_async_tasks_and_the_context(tasks: Any) -> None:
    doubled = tasks.django_async_double.enqueue(21)
    context = tasks.django_attempt.enqueue("tag")
    run_queued(current_app())
    doubled.refresh()
    context.refresh()
    assert doubled.return_value == 42
    assert context.return_value == f"tag:1:{context.id}"


def test_missing_results_do_not_exist(project: Path) -> None:
    for result_id in (str(uuid.uuid4()), "123"):
        with pytest.raises(TaskResultDoesNotExist):
            default_task_backend.get_result(result_id)
        with pytest.raises(TaskResultDoesNotExist):
            asyncio.run(default_task_backend.aget_result(result_id))


def test_enqueue_does_not_wait_for_the_transaction(tasks: Any) -> None:
    with transaction.atomic():
        tasks.django_add.enqueue(1, 1)
        assert queue_admin(current_app().broker).stats("default").ready == 1
    run_queued(current_app())


def test_queues_priorities_and_run_after(tasks: Any) -> None:
    app = current_app()
    tasks.django_add.using(queue_name="reports", priority=100).enqueue(1, 1)
    later = tasks.django_add.using(run_after=datetime.now(UTC) + timedelta(hours=1))
    held = later.enqueue(2, 2)
    stats = queue_admin(app.broker)
    assert stats.stats("reports").ready == 1 and stats.stats("default").delayed == 1
    with pytest.raises(InvalidTaskError, match="not valid"):
        tasks.django_add.using(queue_name="elsewhere")
    assert [conveyor_priority(p) for p in (-100, -1, 0, 1, 50, 100)] == [0, 4, 4, 5, 7, 9]
    run_queued(app, include_delayed=False)
    assert default_task_backend.get_result(held.id).status == TaskResultStatus.READY
    assert stats.purge("default") == 1  # the delayed one waited for its time
