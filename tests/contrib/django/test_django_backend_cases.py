"""The cases of Django's own task-backend tests (Django's tests/tasks/: the immediate backend's
and the backend-independent ones of test_tasks.py), run against ConveyorBackend with a real
worker process (``python -m django conveyor worker``) on the project's SQLite store.

Django's ImmediateBackend runs a task inside ``enqueue``; here the worker runs it, so each case
enqueues, waits for the worker with ``refresh()``, then checks what Django's case checks.
Cases that do not apply, and why:

- ``test_throws_keyboard_interrupt``: the immediate backend lets a task's KeyboardInterrupt
  reach the caller of ``enqueue``; here the caller is not the process that runs the task.
- ``test_cannot_get_result``, ``test_cannot_refresh_result``, ``test_cannot_pass_run_after``:
  ConveyorBackend supports results and ``run_after``; the opposite is tested instead.
- The dummy backend's ``results`` list and ``clear()``: that backend's own test helpers.
- The cases on ``Task`` and ``TaskResult`` alone (``using()``, names, module paths, priority
  bounds, pickling of tasks, equality): Django's code, the same under every backend.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import pickle
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from django.db import transaction
from django.test import override_settings

from conveyor.brokers import queue_admin
from conveyor.contrib.django import ConveyorBackend, current_app
from tests.contrib.django.conftest import stop_worker

try:
    from django.tasks import TaskResultStatus, default_task_backend, task_backends
    from django.tasks.exceptions import InvalidTask as InvalidTaskError
    from django.tasks.exceptions import TaskResultDoesNotExist, TaskResultMismatch
    from django.tasks.signals import task_enqueued
except ImportError:
    from django_tasks import TaskResultStatus, default_task_backend, task_backends
    from django_tasks.exceptions import InvalidTaskError, TaskResultDoesNotExist, TaskResultMismatch
    from django_tasks.signals import task_enqueued

ROOT = Path(__file__).resolve().parents[3]
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def worker(django_project: Path) -> Iterator[Path]:
    """A real worker on the project's store; yields the path of its log."""
    log = django_project / "backend-cases-worker.log"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    argv = [sys.executable, "-m", "django", "conveyor", "worker", "-Q", "default,reports",
            "-c", "2", "-l", "info", "--logfile", str(log)]
    proc = subprocess.Popen(argv, env=env, cwd=ROOT, start_new_session=True)
    try:
        yield log
    finally:
        code = stop_worker(proc)
    assert code == 0


@pytest.fixture
def tasks(worker: Path, project: Path) -> Any:
    from tests.contrib.django.reports import tasks as module

    return module


def finished(result: Any, timeout: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result.refresh()
        if result.is_finished:
            return result
        time.sleep(0.05)
    raise AssertionError(f"{result.id} not finished within {timeout}s: {result.status}")


def assert_timeline(result: Any) -> None:
    assert result.is_finished
    assert None not in (result.started_at, result.last_attempted_at, result.finished_at)
    assert result.finished_at >= result.started_at >= result.enqueued_at


def test_using_correct_backend(tasks: Any) -> None:
    assert default_task_backend == task_backends["default"]
    assert isinstance(task_backends["default"], ConveyorBackend)
    assert default_task_backend.alias == "default"
    assert default_task_backend.options == {}


def test_enqueue_task(tasks: Any) -> None:
    for task in (tasks.django_noop, tasks.django_noop_async):
        result = finished(task.enqueue(1, two=3))
        assert result.status == TaskResultStatus.SUCCESSFUL
        assert_timeline(result)
        assert result.return_value is None and result.task == task
        assert result.args == [1] and result.kwargs == {"two": 3}
        assert result.attempts == 1


def test_enqueue_task_async(tasks: Any) -> None:
    for task in (tasks.django_noop, tasks.django_noop_async):
        result = finished(asyncio.run(task.aenqueue()))
        assert result.status == TaskResultStatus.SUCCESSFUL
        assert_timeline(result)
        assert result.return_value is None and result.task == task
        assert result.args == [] and result.kwargs == {} and result.attempts == 1


@pytest.mark.parametrize(("name", "exception", "message"), [
    ("django_value_error", ValueError, "This task failed due to ValueError"),
    ("django_system_exit", SystemExit, "This task failed due to SystemExit"),
])
def test_catches_exception(tasks: Any, name: str, exception: type[BaseException],
                           message: str) -> None:
    task = getattr(tasks, name)
    result = finished(task.enqueue())
    assert result.status == TaskResultStatus.FAILED
    with pytest.raises(ValueError, match="Task failed"):
        result.return_value  # noqa: B018
    assert_timeline(result)
    assert result.errors[0].exception_class is exception
    assert result.errors[0].traceback.endswith(f"{exception.__name__}: {message}\n")
    assert result.task == task and result.args == [] and result.kwargs == {}


def test_complex_exception(tasks: Any) -> None:
    result = finished(tasks.django_nested_exception.enqueue())
    assert result.status == TaskResultStatus.FAILED
    with pytest.raises(ValueError, match="Task failed"):
        result.return_value  # noqa: B018
    assert_timeline(result)
    assert result._return_value is None
    assert result.errors[0].exception_class is ValueError
    assert 'ValueError(ValueError("This task failed"))' in result.errors[0].traceback


def test_complex_return_value(tasks: Any) -> None:
    result = finished(tasks.django_unjsonable_return.enqueue())
    assert result.status == TaskResultStatus.FAILED
    assert_timeline(result)
    assert result._return_value is None
    assert result.errors[0].exception_class is TypeError
    assert "Unsupported type" in result.errors[0].traceback


def test_result(tasks: Any) -> None:
    result = default_task_backend.enqueue(tasks.django_meaning_of_life, [], {})
    assert finished(result).status == TaskResultStatus.SUCCESSFUL
    assert result.return_value == 42


def test_result_async(tasks: Any) -> None:
    async def enqueue_and_wait() -> Any:
        result = await default_task_backend.aenqueue(tasks.django_meaning_of_life, [], {})
        deadline = time.monotonic() + 60
        while not result.is_finished and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
            await result.arefresh()
        return result

    result = asyncio.run(enqueue_and_wait())
    assert result.status == TaskResultStatus.SUCCESSFUL and result.return_value == 42


def test_get_result_and_mismatch(tasks: Any) -> None:
    result = default_task_backend.enqueue(tasks.django_noop, (), {})
    assert tasks.django_noop.get_result(result.id).id == result.id
    assert asyncio.run(tasks.django_noop.aget_result(result.id)).id == result.id
    with pytest.raises(TaskResultMismatch, match="Task does not match"):
        tasks.django_meaning_of_life.get_result(result.id)
    for missing in ("123", "0" * 32):
        with pytest.raises(TaskResultDoesNotExist):
            tasks.django_noop.get_result(missing)
        with pytest.raises(TaskResultDoesNotExist):
            asyncio.run(tasks.django_noop.aget_result(missing))


def test_refresh_of_a_waiting_result_changes_nothing(tasks: Any) -> None:
    later = tasks.django_noop.using(run_after=datetime.now(UTC) + timedelta(hours=1))
    result = later.enqueue()
    before = dataclasses.asdict(result)
    result.refresh()
    assert dataclasses.asdict(result) == before
    asyncio.run(result.arefresh())
    assert dataclasses.asdict(result) == before
    assert queue_admin(current_app().broker).purge("default") >= 1


def test_run_after_is_kept(tasks: Any) -> None:
    run_after = datetime.now(UTC) + timedelta(seconds=1.5)
    result = finished(tasks.django_meaning_of_life.using(run_after=run_after).enqueue())
    assert result.status == TaskResultStatus.SUCCESSFUL
    assert result.started_at >= run_after - timedelta(seconds=0.01)


def test_enqueue_with_invalid_argument_sends_nothing(tasks: Any) -> None:
    stats = queue_admin(current_app().broker)
    before = stats.stats("default").ready
    with pytest.raises(TypeError, match="Unsupported type"):
        tasks.django_noop.enqueue(datetime.now())
    with pytest.raises(TypeError, match="Unsupported type"):
        asyncio.run(tasks.django_noop.aenqueue(datetime.now()))
    assert stats.stats("default").ready <= before


def test_pickle_task_result(tasks: Any) -> None:
    if not hasattr(type(tasks.django_meaning_of_life), "_reconstruct"):
        pytest.skip("this django-tasks cannot pickle a Task (Django 6's can): not the backend")
    result = finished(tasks.django_meaning_of_life.enqueue())
    assert pickle.loads(pickle.dumps(result)) == result


def test_takes_context(tasks: Any) -> None:
    result = finished(tasks.django_own_id.enqueue())
    assert result.return_value == result.id


def test_context(tasks: Any) -> None:
    result = finished(tasks.django_check_context.enqueue(1))
    assert result.status == TaskResultStatus.SUCCESSFUL and result.return_value == 1


def test_validate_on_enqueue(tasks: Any) -> None:
    backend = "conveyor.contrib.django.ConveyorBackend"
    with override_settings(TASKS={"default": {"BACKEND": backend, "QUEUES": []}}):
        other = tasks.django_noop.using(queue_name="unknown_queue")  # any queue goes here
    with override_settings(TASKS={"default": {"BACKEND": backend, "QUEUES": ["queue-1"]}}):
        with pytest.raises(InvalidTaskError, match="Queue 'unknown_queue' is not valid"):
            other.enqueue()
        with pytest.raises(InvalidTaskError, match="Queue 'unknown_queue' is not valid"):
            asyncio.run(other.aenqueue())


def test_enqueue_sends_the_enqueued_signal_and_the_worker_logs_each_state(
        tasks: Any, worker: Path) -> None:
    seen: list[Any] = []

    def receive(sender: type, task_result: Any, **kwargs: Any) -> None:
        seen.append((sender, task_result.id))

    task_enqueued.connect(receive)
    try:
        result = tasks.django_noop.enqueue()
        failure = tasks.django_value_error.enqueue()
    finally:
        task_enqueued.disconnect(receive)
    assert seen == [(ConveyorBackend, result.id), (ConveyorBackend, failure.id)]
    finished(result)
    finished(failure)
    deadline = time.monotonic() + 10
    wanted = [f"{result.id} path={result.task.module_path} state=RUNNING",
              f"{result.id} path={result.task.module_path} state=SUCCESSFUL",
              f"{failure.id} path={failure.task.module_path} state=RUNNING",
              f"{failure.id} path={failure.task.module_path} state=FAILED"]
    while time.monotonic() < deadline:
        text = worker.read_text()
        if all(line in text for line in wanted):
            break
        time.sleep(0.1)
    assert [line for line in wanted if line not in text] == []
    assert "NoneType" not in text


def test_doesnt_wait_until_transaction_commit(tasks: Any) -> None:
    with transaction.atomic():
        result = tasks.django_noop.enqueue()
        assert result.enqueued_at is not None
        assert finished(result).status == TaskResultStatus.SUCCESSFUL
    assert result.status == TaskResultStatus.SUCCESSFUL
