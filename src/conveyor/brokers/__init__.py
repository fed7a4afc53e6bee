"""Stores by URL scheme, opened by :func:`open_broker` and :func:`open_backend`.

``memory://`` (in-process test double), ``sqlite:///path.db`` (embedded default),
``redis://``, ``rediss://``, ``redis+sentinel://``, ``redis+cluster://``, and ``amqp://`` /
``amqps://`` (RabbitMQ, a broker only: results go to another store). Each store module exposes
``open_store(url, **options)``; its object is a :class:`Broker`, a :class:`ResultBackend` or
both. A store module is imported only when its scheme is used, so optional drivers stay optional.
"""

from __future__ import annotations

import importlib
from typing import Any

from ..errors import ConfigurationError
from ..urls import mask_url, scheme_of
from .base import (
    Broker,
    Claim,
    ConcurrencySlots,
    Consumer,
    ControlLog,
    Coordination,
    DeadLetter,
    DeadLetterAdmin,
    DelayedWake,
    Delivery,
    Envelope,
    EventLog,
    PullBroker,
    QueueAdmin,
    QueueStats,
    RateLimiter,
    RateWindow,
    ResultBackend,
    ResultWrite,
    Revocations,
    StoredResult,
    Waiter,
    dead_letter_admin,
    queue_admin,
)

__all__ = [
    "Broker",
    "Claim",
    "ConcurrencySlots",
    "Consumer",
    "ControlLog",
    "Coordination",
    "DeadLetter",
    "DeadLetterAdmin",
    "DelayedWake",
    "Delivery",
    "Envelope",
    "EventLog",
    "PullBroker",
    "QueueAdmin",
    "QueueStats",
    "RateLimiter",
    "RateWindow",
    "ResultBackend",
    "ResultWrite",
    "Revocations",
    "StoredResult",
    "Waiter",
    "dead_letter_admin",
    "open_backend",
    "open_broker",
    "open_store",
    "queue_admin",
]

_MODULES = {
    "memory": "conveyor.brokers.memory",
    "sqlite": "conveyor.brokers.sqlite",
    "redis": "conveyor.brokers.redis",
    "rediss": "conveyor.brokers.redis",
    "redis+sentinel": "conveyor.brokers.redis",
    "redis+cluster": "conveyor.brokers.redis",
    "amqp": "conveyor.brokers.amqp",
    "amqps": "conveyor.brokers.amqp",
}
#: The package extra that brings a scheme's driver, where it is not named after the scheme.
_EXTRAS = {"rediss": "redis", "redis+sentinel": "redis", "redis+cluster": "redis",
           "amqps": "amqp"}


def open_store(url: str, **options: Any) -> Broker | ResultBackend:
    """Open the store for ``url``: a broker, a result backend, or (most stores) both."""
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
            f" install conveyor-tasks[{_EXTRAS.get(scheme, scheme)}]"
        ) from exc
    store = module.open_store(url, **options)
    if not isinstance(store, Broker | ResultBackend):
        raise ConfigurationError(f"{scheme}:// opened {type(store).__name__}, not a store")
    return store


def as_broker(store: Broker | ResultBackend) -> Broker:
    """``store`` as a broker, or ConfigurationError when it only keeps results."""
    if not isinstance(store, Broker):
        raise ConfigurationError(f"{store.url} is a result backend, not a broker")
    return store


def as_backend(store: Broker | ResultBackend) -> ResultBackend:
    """``store`` as a result backend, or ConfigurationError when it only carries messages."""
    if not isinstance(store, ResultBackend):
        raise ConfigurationError(
            f"{store.url} is a broker only and keeps no results; give the app a result"
            " backend (backend='redis://...' or 'sqlite:///results.db')")
    return store


def open_broker(url: str, **options: Any) -> Broker:
    """Open ``url`` as a broker."""
    return as_broker(open_store(url, **options))


def open_backend(url: str, **options: Any) -> ResultBackend:
    """Open ``url`` as a result backend."""
    return as_backend(open_store(url, **options))
