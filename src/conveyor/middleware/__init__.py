"""Features on the execution seam, one per module, and the default stack every app runs.

``Conveyor(middleware=[...])`` or ``app.add_middleware(...)`` adds your own after these; see
:class:`Middleware` for the hooks.
"""

from __future__ import annotations

from .base import Action, Call, Chain, Job, Middleware, Verdict
from .delivery_limit import DeliveryLimit
from .events import Events
from .expiry import Expiry
from .logs import TaskLog
from .results import Results
from .retries import Retries
from .time_limits import TimeLimits


def default_middleware() -> list[Middleware]:
    """The built-in features in the order they see a delivery."""
    return [Events(), TaskLog(), DeliveryLimit(), Expiry(), Results(), TimeLimits(), Retries()]


__all__ = [
    "Action",
    "Call",
    "Chain",
    "DeliveryLimit",
    "Events",
    "Expiry",
    "Job",
    "Middleware",
    "Results",
    "Retries",
    "TaskLog",
    "TimeLimits",
    "Verdict",
    "default_middleware",
]
