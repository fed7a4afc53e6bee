"""Where a queue name sends a message, and what a worker consuming it declares.

A Conveyor queue name is one of:

``emails``
    a durable work queue of that name, reached through RabbitMQ's default (direct) exchange.
``fanout/EXCHANGE``
    a broadcast: published to the fanout exchange ``EXCHANGE``; every worker consuming
    ``fanout/EXCHANGE`` has its own exclusive queue bound to it, so each one runs the task
    (cache invalidation, reloading configuration). A worker that is not running misses it.
``topic/EXCHANGE/KEY``
    published to the topic exchange ``EXCHANGE`` with routing key ``KEY`` (``image.png``);
    a worker consuming ``topic/EXCHANGE/PATTERN`` (``image.*``, ``image.#``) reads a durable
    queue of that name bound with ``PATTERN``: workers consuming the same pattern share it.

Task names map to queue names through the app's ``routes`` setting (glob patterns, see
:func:`conveyor.sending.routed`). Exchanges are declared on first use, idempotently.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

from ...errors import ConfigurationError

KINDS = ("fanout", "topic")
_NAME = re.compile(r"^[\w:.\-]+$")  # what AMQP's short strings carry as names


@dataclass(frozen=True, slots=True)
class Target:
    """A parsed queue name: ``kind`` is ``direct`` (a plain queue), ``fanout`` or ``topic``."""

    name: str
    kind: str = "direct"
    exchange: str = ""
    key: str = ""

    @property
    def direct(self) -> bool:
        return self.kind == "direct"

    @property
    def queue(self) -> str:
        """The RabbitMQ queue consuming this name reads (before the prefix): the name itself,
        or ``topic.EXCHANGE.PATTERN`` with ``*`` and ``#`` spelled ``star`` and ``hash``."""
        if self.kind != "topic":
            return self.name
        words = ["star" if w == "*" else "hash" if w == "#" else w for w in self.key.split(".")]
        return ".".join(["topic", self.exchange, *words])


@functools.lru_cache(maxsize=1024)
def target(name: str) -> Target:
    """Parse a queue name (ConfigurationError for a malformed exchange form). Cached: every
    publish and every run asks, for a handful of names."""
    if not name:
        raise ConfigurationError("a queue name cannot be empty")
    kind, sep, rest = name.partition("/")
    if not sep or kind not in KINDS:
        if len(name.encode()) > 200 or not _NAME.match(name):
            raise ConfigurationError(f"queue name {name[:60]!r}: use at most 200 letters,"
                                     " digits, '_', '-', '.' or ':'")
        return Target(name)
    if kind == "fanout":
        if not rest or "/" in rest or not _NAME.match(rest):
            raise ConfigurationError(f"{name!r}: a broadcast queue is fanout/EXCHANGE")
        return Target(name, "fanout", rest, "")
    exchange, sep, key = rest.partition("/")
    if not exchange or not sep or not key or not _NAME.match(exchange):
        raise ConfigurationError(f"{name!r}: a topic queue is topic/EXCHANGE/ROUTING_KEY")
    return Target(name, "topic", exchange, key)
