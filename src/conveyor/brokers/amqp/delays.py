"""Delays kept in RabbitMQ, on a stock server: binary delay levels (after NServiceBus's design).

A delay of ``d`` milliseconds (rounded up, so never early) is written in binary. Level ``n``
(0..31) is a queue whose every message waits exactly ``2**n`` ms (``x-message-ttl``), then
dead-letters into the topic exchange of level ``n - 1``. The routing key spells the delay's
bits, most significant first, and ends with a token naming the destination queue::

    0.0.0 ... 1.0.0.1.0.1.1.0.0.0.0.0.1f0c...    (32 bit words, then the destination token)

At each level's exchange a key whose bit ``n`` is 1 goes to that level's queue of the
destination; one whose bit is 0 passes on to the next exchange down. Below level 0 the delivery
exchange hands the message to its work queue. So a message waits in exactly the levels of its
set bits, for exactly its delay; every message of one level queue has the same TTL, so they
expire in arrival order and a short delay never waits behind a long one. A delay longer than
every level together (about 49 days) waits that long, and the consumer sends it round again.

Each destination has its own level queues, so its delayed messages can be counted and purged
with it; a level queue is declared with the first delayed message that waits in it, so a
destination whose delays stay under a minute never has more than 16. The level queues are
quorum queues that dead-letter at least once (see :mod:`.topology`), or, with
``delay_queue_type=classic``, the classic ones of earlier versions, which RabbitMQ dead-letters
at most once and unconfirmed. The two kinds are two chains side by side on the same exchanges:
each has its own queue names and its own destination token, so a message routed into one
never reaches the other, and messages still waiting in an old classic chain arrive as before.
"""

from __future__ import annotations

import hashlib
import math

LEVELS = 32
MAX_DELAY_MS: int = (1 << LEVELS) - 1


def delay_ms(seconds: float) -> int:
    """The delay in whole milliseconds, rounded up (never early), at most :data:`MAX_DELAY_MS`."""
    return min(max(math.ceil(seconds * 1000.0), 1), MAX_DELAY_MS)


def token(queue: str, kind: str) -> str:
    """One routing-key word naming a destination queue (any name: dots, ``#`` and all) in the
    chain of level queues of type ``kind`` (the classic chain keeps its earlier tokens)."""
    salt = "" if kind == "classic" else f"{kind}:"
    return hashlib.sha1(f"{salt}{queue}".encode()).hexdigest()[:24]


def routing_key(ms: int, queue: str, kind: str) -> str:
    """The key spelling the bits of ``ms`` (level 31 first) and the destination."""
    bits = ".".join("1" if ms >> level & 1 else "0" for level in reversed(range(LEVELS)))
    return f"{bits}.{token(queue, kind)}"


def set_levels(ms: int) -> list[int]:
    """The levels a message of ``ms`` waits in: the bits set in ``ms``, highest first."""
    return [level for level in reversed(range(LEVELS)) if ms >> level & 1]


def entry_level(ms: int) -> int:
    """The level whose exchange a message of ``ms`` is first published to: its highest bit."""
    return ms.bit_length() - 1


def level_binding(level: int, bit: str, destination: str = "*") -> str:
    """The binding key matching keys whose bit ``level`` is ``bit`` (for ``destination``)."""
    words = ["*"] * LEVELS
    words[LEVELS - 1 - level] = bit
    return ".".join([*words, destination])


def deliver_binding(queue: str, kind: str) -> str:
    """The delivery exchange's binding key for ``queue``: any bits, its token."""
    return ".".join(["*"] * LEVELS + [token(queue, kind)])
