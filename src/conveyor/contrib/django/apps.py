"""The Django app config: add ``"conveyor.contrib.django"`` to ``INSTALLED_APPS``."""

from __future__ import annotations

from django.apps import AppConfig


class ConveyorConfig(AppConfig):
    """Makes the project's Conveyor app from ``settings.CONVEYOR`` and imports every installed
    app's ``tasks.py`` when Django starts."""

    name = "conveyor.contrib.django"
    label = "conveyor"
    verbose_name = "Conveyor"

    def ready(self) -> None:
        from .app import current_app

        current_app().autodiscover_tasks()
