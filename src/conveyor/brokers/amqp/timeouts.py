"""RabbitMQ's consumer timeout against task time limits.

RabbitMQ closes a channel whose oldest unacknowledged delivery is older than its
``consumer_timeout`` (30 minutes by default, ``consumer_timeout`` in ``rabbitmq.conf``, in
milliseconds). The clock starts at hand-out, so time a prefetched message waits for a free slot
counts too. The closure costs a redelivery, never the task: the messages of that channel go
back to the queue, the consumer subscribes again (:mod:`.consuming`), and the run still going
stores its outcome, after which the redelivered copy is settled without running again.

RabbitMQ does not tell clients its value, so the URL states it (``?consumer_timeout=SECONDS``,
``0`` when the server's check is off); a worker warns at start-up about every task whose
``time_limit`` is longer.
"""

from __future__ import annotations

from collections.abc import Mapping

DEFAULT_SECONDS = 1800.0  # RabbitMQ's default: 30 minutes


def too_long(limits: Mapping[str, float | None], timeout: float) -> list[str]:
    """A warning for each task whose time limit exceeds ``timeout`` seconds (0: no check)."""
    if timeout <= 0:
        return []
    return [f"task {name}: time_limit {limit:g}s is longer than RabbitMQ's consumer timeout"
            f" ({timeout:g}s): a run that long has its channel closed and its message"
            " redelivered while it runs; raise consumer_timeout in rabbitmq.conf (and state it"
            " with ?consumer_timeout= in the broker URL) or lower the time limit"
            for name, limit in sorted(limits.items()) if limit is not None and limit > timeout]
