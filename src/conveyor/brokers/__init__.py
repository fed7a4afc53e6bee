"""Stores by URL scheme. Each store module exposes ``open_store(url) -> Broker & ResultBackend``.

``memory://`` (in-process test double), ``sqlite:///path.db`` (embedded default),
``redis://``, ``rediss://`` and ``redis+sentinel://``. A store module is imported only when its
scheme is used, so optional drivers stay optional.
"""

from __future__ import annotations

import importlib
from typing import Any

from ..errors import ConfigurationError
from ..urls import mask_url, scheme_of
from .base import (
    Broker,
    Claim,
    Consumer,
    DeadLetter,
    Delivery,
    Envelope,
    PullBroker,
    QueueStats,
    ResultBackend,
    ResultWrite,
    StoredResult,
)

__all__ = [
    "Broker",
    "Claim",
    "Consumer",
    "DeadLetter",
    "Delivery",
    "Envelope",
    "PullBroker",
    "QueueStats",
    "ResultBackend",
    "ResultWrite",
    "StoredResult",
    "open_store",
]

_MODULES = {
    "memory": "conveyor.brokers.memory",
    "sqlite": "conveyor.brokers.sqlite",
    "redis": "conveyor.brokers.redis",
    "rediss": "conveyor.brokers.redis",
    "redis+sentinel": "conveyor.brokers.redis",
}


def open_store(url: str, **options: Any) -> Any:
    """Open the store for ``url``; the object is both a Broker and a ResultBackend."""
    scheme = scheme_of(url)
    module_name = _MODULES.get(scheme)
    if module_name is None:
        raise ConfigurationError(
            f"unknown store scheme {scheme!r} in {mask_url(url)!r}; use one of"
            f" {', '.join(sorted(_MODULES))}"
        )
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigurationError(
            f"{scheme}:// needs an optional dependency ({exc.name});"
            f" install conveyor-tasks[{scheme}]"
        ) from exc
    return module.open_store(url, **options)
