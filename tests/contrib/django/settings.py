"""Settings of the Django test project: its database and Conveyor store live in
``$CONVEYOR_TEST_DJANGO_DIR`` (one per test session)."""

from __future__ import annotations

import os
from pathlib import Path

HERE = Path(os.environ["CONVEYOR_TEST_DJANGO_DIR"])
SECRET_KEY = "test-only-not-secret"
USE_TZ = True
INSTALLED_APPS = ["django.contrib.contenttypes", "conveyor.contrib.django",
                  "tests.contrib.django.reports"]
DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": str(HERE / "app.db"),
                         "CONN_MAX_AGE": 0, "OPTIONS": {"timeout": 30}}}
CONVEYOR = {"name": "reports", "broker_url": os.environ["CONVEYOR_TEST_DJANGO_BROKER"],
            "result_ttl": 600}
TASKS = {"default": {"BACKEND": "conveyor.contrib.django.ConveyorBackend",
                     "QUEUES": ["default", "reports"]}}
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"
