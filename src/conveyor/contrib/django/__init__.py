"""Django: settings, task discovery, ``delay_on_commit``, a management command and a backend
for Django's own tasks framework.

```python
# settings.py
INSTALLED_APPS = [..., "conveyor.contrib.django"]
CONVEYOR = {"broker_url": "redis://localhost:6379/0", "result_ttl": 3600}
TASKS = {"default": {"BACKEND": "conveyor.contrib.django.ConveyorBackend"}}  # django.tasks

# reports/tasks.py, in any installed app
from conveyor.contrib.django import shared_task

@shared_task(queue="reports")
def build_report(report_id: int) -> str: ...

# a view
with transaction.atomic():
    report = Report.objects.create(...)
    build_report.delay_on_commit(report.pk)   # sent once the transaction commits
```

``python manage.py conveyor worker|beat|dashboard [options]`` runs the ``conveyor`` command
for the project's app. The app is made from ``settings.CONVEYOR`` (any setting of
:mod:`conveyor.config`, plus ``"name"``), or is yours: ``CONVEYOR = {"app":
"proj.queue:app"}`` names a :class:`Conveyor` of this module you created. Every installed app's
``tasks.py`` is imported when Django starts. Workers close stale database connections between
tasks (:class:`conveyor.middleware.django_db.DjangoConnections`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .app import Conveyor, DjangoAsyncTask, DjangoTask, current_app, shared_task

if TYPE_CHECKING:
    from .backend import ConveyorBackend

__all__ = ["Conveyor", "ConveyorBackend", "DjangoAsyncTask", "DjangoTask", "current_app",
           "shared_task"]


def __getattr__(name: str) -> Any:
    if name == "ConveyorBackend":  # imports django_tasks only when TASKS names it
        from .backend import ConveyorBackend

        return ConveyorBackend
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
