"""The worker module of a FastAPI + Celery + Redis tutorial app, ported by following
docs/coming-from-celery.md. The lines the port changed carry the Celery line they replace."""

from __future__ import annotations

import os
import time

from conveyor import Conveyor  # was: from celery import Celery

celery = Conveyor(__name__)  # was: Celery(__name__); the same name keeps the module's shape
celery.conf.broker_url = os.environ.get("CELERY_BROKER_URL", "redis://localhost:6379/0")
celery.conf.result_backend = os.environ.get("CELERY_RESULT_BACKEND",
                                            "redis://localhost:6379/0")


@celery.task(name="create_task")
def create_task(task_type: int) -> bool:
    """The tutorial's long task: sleeps in proportion to its type (tenths of a second here)."""
    if task_type < 0:
        raise ValueError(f"no task of type {task_type}")
    time.sleep(task_type / 10)
    return True
