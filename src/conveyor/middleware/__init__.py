"""Features on the execution seam, one per module, and the default stack every app runs.

``Conveyor(middleware=[...])`` or ``app.add_middleware(...)`` adds your own after these; see
:class:`Middleware` for the hooks.
"""

from __future__ import annotations

from .base import Action, Call, Chain, Job, Middleware, Verdict
from .concurrency_keys import ConcurrencyKeys
from .delivery_limit import DeliveryLimit
from .events import Events
from .expiry import Expiry
from .id_claims import IdClaims
from .logs import TaskLog
from .rate_limits import RateLimits
from .remote_control import RemoteControl
from .results import Results
from .retries import Retries
from .revocation import Revocation
from .time_limits import TimeLimits
from .unique import UniqueTasks
from .workflows import Workflows


def default_middleware() -> list[Middleware]:
    """The built-in features in the order they see a delivery. Revocation, concurrency keys and
    rate limits decide before Results records STARTED, so a task that is not run (or waits) is
    not marked started; IdClaims (one delivery of an id at a time, where the broker keeps no
    index of ids) comes before anything spends a rate or a slot on a copy. Revocation judges a
    terminated run before Retries could retry it. Workflows comes last: what follows a task is
    sent once its result is settled on."""
    return [Events(), TaskLog(), RemoteControl(), DeliveryLimit(), Expiry(), Revocation(),
            IdClaims(),
            ConcurrencyKeys(), RateLimits(), Results(), TimeLimits(), UniqueTasks(), Retries(),
            Workflows()]


__all__ = [
    "Action",
    "Call",
    "Chain",
    "ConcurrencyKeys",
    "DeliveryLimit",
    "Events",
    "Expiry",
    "IdClaims",
    "Job",
    "Middleware",
    "RateLimits",
    "RemoteControl",
    "Results",
    "Retries",
    "Revocation",
    "TaskLog",
    "TimeLimits",
    "UniqueTasks",
    "Verdict",
    "Workflows",
    "default_middleware",
]
