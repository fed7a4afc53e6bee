"""RabbitMQ as a broker (``amqp://``, ``amqps://``), on aio-pika and aiormq.

One idea per module: :mod:`.options` (the URL), :mod:`.connection` (one lazily opened,
self-recovering connection per event loop), :mod:`.bridge` (the sync producer's background
loop), :mod:`.routing` (queue names, fanout and topic exchanges), :mod:`.topology` (declaring
queues and exchanges), :mod:`.delays` (binary delay levels), :mod:`.publishing` (confirms and
the mandatory flag), :mod:`.consuming` (manual acks, prefetch, attempt counting),
:mod:`.admin` (statistics, purge, the dead-letter queue) and :mod:`.timeouts` (RabbitMQ's
consumer timeout against task time limits). See docs/rabbitmq.md.
"""

from __future__ import annotations

from typing import Any

from ...clock import SYSTEM, Clock
from ...errors import ConfigurationError
from .broker import AmqpBroker
from .options import parse

__all__ = ["AmqpBroker", "open_store"]


def open_store(url: str, *, clock: Clock = SYSTEM, queue_type: str | None = None,
               **options: Any) -> AmqpBroker:
    """Open the broker for an ``amqp://`` or ``amqps://`` URL. It connects on first use.

    ``queue_type`` (``classic`` or ``quorum``) applies when the URL names none."""
    if options:
        raise ConfigurationError(f"unknown option(s) for amqp://: {', '.join(sorted(options))}")
    return AmqpBroker(parse(url, queue_type), clock)
