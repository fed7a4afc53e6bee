"""Finding the application named on the command line: ``-A module``, ``-A module:attr`` or, as
Celery users type it, ``-A package.module.attr``."""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from collections.abc import Iterable
from types import ModuleType
from typing import TYPE_CHECKING

from .errors import ConfigurationError

if TYPE_CHECKING:
    from .app import Conveyor


def load_app(path: str) -> Conveyor:
    """Import ``module`` and take its ``app`` (or its only Conveyor), or ``module:attr``; a
    dotted path whose last part is not a module is read as ``module.attr``."""
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    module_name, colon, attr = path.partition(":")
    if not module_name:
        raise ConfigurationError(f"-A {path!r}: name a module, as in -A shop or -A shop:app")
    if colon:
        return _app_in(_import(module_name, path), attr, path)
    try:
        return _app_in(_import(module_name, path), "", path)
    except _Missing as missing:
        head, dot, tail = module_name.rpartition(".")
        if not dot or missing.name != module_name:
            raise ConfigurationError(str(missing)) from None
        return _app_in(_import(head, path), tail, path)


class _Missing(ConfigurationError):
    def __init__(self, text: str, name: str) -> None:
        super().__init__(text)
        self.name = name


def _import(module_name: str, path: str) -> ModuleType:
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        text = (f"-A {path}: cannot import {module_name!r}: {exc} (run from the directory"
                " that holds it, or add that directory to PYTHONPATH)")
        raise _Missing(text, exc.name or "") from exc
    except Exception as exc:  # the user's module failed while importing
        raise ConfigurationError(
            f"-A {path}: importing {module_name!r} failed: {type(exc).__name__}: {exc}") from exc


def _app_in(module: ModuleType, attr: str, path: str) -> Conveyor:
    from .app import Conveyor

    if attr:
        found = getattr(module, attr, None)
    else:
        found = getattr(module, "app", None)
        if not isinstance(found, Conveyor):
            apps = [v for v in vars(module).values() if isinstance(v, Conveyor)]
            found = apps[0] if len(apps) == 1 else None
    if not isinstance(found, Conveyor):
        what = f"attribute {attr!r}" if attr else "a Conveyor app (or name it as module:attr)"
        raise ConfigurationError(f"-A {path}: module {module.__name__!r} has no {what}")
    return found


def autodiscover(packages: Iterable[str] | None, related_name: str = "tasks") -> list[str]:
    """Import ``package.<related_name>`` for each package that has one (default: the names of
    Django's installed apps); returns the modules imported."""
    names = list(packages) if packages is not None else _django_apps()
    found: list[str] = []
    for package in names:
        module = f"{package}.{related_name}"
        try:
            spec = importlib.util.find_spec(module)
        except ModuleNotFoundError:  # the package itself is missing
            spec = None
        if spec is not None:
            importlib.import_module(module)
            found.append(module)
    return found


def _django_apps() -> list[str]:
    try:
        from django.apps import apps
    except ImportError:
        raise ConfigurationError("autodiscover_tasks() without packages needs Django;"
                                 " name the packages to search") from None
    if not apps.apps_ready:  # called while Django starts (a project's conveyor.py imported
        return []             # early): conveyor.contrib.django's AppConfig.ready() does it
    return [config.name for config in apps.get_app_configs()]
