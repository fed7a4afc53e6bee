"""Settings of the reports example. The database and Conveyor's store are SQLite files next to
manage.py unless REPORTS_DB / CONVEYOR_BROKER_URL say otherwise (Redis: redis://...)."""

from __future__ import annotations

import os
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "example-only-not-secret")
DEBUG = True
ALLOWED_HOSTS = ["127.0.0.1", "localhost", "testserver"]
USE_TZ = True
TIME_ZONE = "UTC"
ROOT_URLCONF = "reportsite.urls"
STATIC_URL = "static/"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
INSTALLED_APPS = [
    "django.contrib.contenttypes",
    "conveyor.contrib.django",   # settings.CONVEYOR, tasks.py discovery, manage.py conveyor
    "reports",
]
MIDDLEWARE = ["django.middleware.common.CommonMiddleware"]
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.environ.get("REPORTS_DB", str(BASE_DIR / "db.sqlite3")),
        "OPTIONS": {"timeout": 30},
        "TEST": {"NAME": os.environ.get("REPORTS_TEST_DB", str(BASE_DIR / "test-db.sqlite3"))},
    }
}
CONVEYOR = {
    "name": "reports",
    "broker_url": os.environ.get("CONVEYOR_BROKER_URL", f"sqlite:///{BASE_DIR / 'conveyor.db'}"),
    "beat_schedule": {
        "daily clean-up": {"task": "reports.tasks.clean_up", "schedule": "0 3 * * *",
                           "kwargs": {"days": 30}},
    },
}
