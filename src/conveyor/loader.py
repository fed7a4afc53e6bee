"""Finding the application object named on the command line (``-A module`` or ``module:attr``)."""

from __future__ import annotations

import importlib
import os
import sys
from typing import TYPE_CHECKING

from .errors import ConfigurationError

if TYPE_CHECKING:
    from .app import Conveyor


def load_app(path: str) -> Conveyor:
    """Import ``module`` (finding ``app`` or the only Conveyor in it) or ``module:attr``."""
    from .app import Conveyor

    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    module_name, _, attr = path.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigurationError(f"cannot import {module_name!r}: {exc}") from exc
    if attr:
        found = getattr(module, attr, None)
    else:
        found = getattr(module, "app", None)
        if not isinstance(found, Conveyor):
            apps = [v for v in vars(module).values() if isinstance(v, Conveyor)]
            found = apps[0] if len(apps) == 1 else None
    if not isinstance(found, Conveyor):
        raise ConfigurationError(f"no Conveyor app found at {path!r} (use module:attribute)")
    return found
