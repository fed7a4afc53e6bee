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
