"""Tasks of the test app: Conveyor's own (``shared_task``) and Django-native ones."""

from __future__ import annotations

from typing import Any

from django.db import connections

from conveyor.contrib.django import shared_task

try:
    from django.tasks import TaskContext, task
except ImportError:
    from django_tasks import TaskContext, task

from .models import Note

SEEN_CONNECTIONS: list[Any] = []


@shared_task(queue="reports")
def note_text(note_id: int) -> str:
    return Note.objects.get(pk=note_id).text


@shared_task
def touch_database() -> int:
    SEEN_CONNECTIONS.append(connections["default"])  # this thread's own
    return Note.objects.count()


@task()
def django_add(x: int, y: int) -> int:
    return x + y


@task(priority=50, queue_name="reports")
def django_fail(why: str) -> None:
    raise ValueError(why)


@task(takes_context=True)
def django_attempt(context: TaskContext, tag: str) -> str:
    return f"{tag}:{context.attempt}:{context.task_result.id}"


@task()
async def django_async_double(x: int) -> int:
    return 2 * x


# The tasks of Django's own backend tests (tests/tasks/tasks.py in Django), written again for
# test_django_backend_cases.py: the cases of Django's test suite run against ConveyorBackend.
@task()
def django_noop(*args: Any, **kwargs: Any) -> None:
    return None


@task()
async def django_noop_async(*args: Any, **kwargs: Any) -> None:
    return None


@task()
def django_meaning_of_life() -> int:
    return 42


@task()
def django_value_error() -> None:
    raise ValueError("This task failed due to ValueError")


@task()
def django_system_exit() -> None:
    raise SystemExit("This task failed due to SystemExit")


@task()
def django_nested_exception() -> None:
    raise ValueError(ValueError("This task failed"))


@task()
def django_unjsonable_return() -> Any:
    return {"at": object()}  # not JSON: the run fails, as in Django's own backends


@task(takes_context=True)
def django_own_id(context: TaskContext) -> str:
    return context.task_result.id


@task(takes_context=True)
def django_check_context(context: TaskContext, attempt: int) -> int:
    assert isinstance(context, TaskContext)
    assert context.attempt == attempt
    return context.attempt
