"""A Django view answering a task's state, result or error as JSON:
``path("tasks/<str:task_id>", task_status)`` (see :mod:`conveyor.contrib.status`)."""

from __future__ import annotations

from typing import Any

from django.http import JsonResponse
from django.views.decorators.http import require_GET

from ..status import task_status as _status
from .app import current_app


@require_GET  # type: ignore[untyped-decorator]
def task_status(request: Any, task_id: str) -> JsonResponse:
    """``{"id", "state", "ready", "result", "error", "date_done", "task"}`` for ``task_id``."""
    return JsonResponse(_status(current_app(), task_id))
