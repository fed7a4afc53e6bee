"""A call's ``routing_key=``: the key a message is published with, on brokers with exchanges.

Only RabbitMQ (``amqp://``, ``amqps://``) routes by key. There the message's queue (from
``queue=``, the app's ``routes`` or the task's option) says which exchange gets it:

- ``topic/EXCHANGE/KEY`` (or ``topic/EXCHANGE`` alone): the call's key replaces ``KEY``, so
  ``apply_async(queue="topic/media", routing_key="image.png")`` is published to the topic
  exchange ``media`` with the key ``image.png``; a named direct exchange is the same with keys
  without wildcards.
- a plain queue: RabbitMQ's default (direct) exchange, whose routing key *is* the queue name,
  so the key names the queue; with a different ``queue=`` in the same call that is a conflict.
- ``fanout/EXCHANGE``: a fanout exchange ignores keys, so a key there is a mistake.

Redis, SQLite and memory brokers have no exchanges: a key there would be silently dropped, so
it is a :class:`ConfigurationError` that says to name the queue instead.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from .errors import ConfigurationError

EXCHANGE_SCHEMES = ("amqp", "amqps")


def keyed(broker_url: str, queue: str, key: str | None, *, explicit: bool) -> str:
    """The queue name that carries ``key`` for a message to ``queue`` (``explicit``: the call
    named that queue itself)."""
    if key is None:
        return queue
    if not key or len(key.encode()) > 255:
        raise ConfigurationError(f"routing_key must be 1 to 255 bytes, got {key[:60]!r}")
    scheme = urlsplit(broker_url).scheme
    if scheme not in EXCHANGE_SCHEMES:
        raise ConfigurationError(
            f"routing_key={key!r}: a {scheme}:// broker has no exchanges to route by key;"
            " name the queue with queue= (routing keys need RabbitMQ, amqp://)")
    kind, _, rest = queue.partition("/")
    if kind == "topic" and rest:
        return f"topic/{rest.partition('/')[0]}/{key}"
    if kind == "fanout" and rest:
        raise ConfigurationError(f"routing_key={key!r}: {queue!r} is a fanout exchange,"
                                 " which sends to every bound queue and ignores keys")
    if explicit and key != queue:
        raise ConfigurationError(
            f"routing_key={key!r} with queue={queue!r}: on RabbitMQ's default exchange the key"
            f" is the queue name; send to queue='topic/EXCHANGE' to route {key!r} by pattern")
    return key
