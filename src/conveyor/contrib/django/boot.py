"""What a worker's processes load for a Django project (``-A conveyor.contrib.django.boot``):
Django set up from ``DJANGO_SETTINGS_MODULE``, then the project's app, its tasks discovered."""

from __future__ import annotations

import django

from .app import current_app

django.setup()
app = current_app()
