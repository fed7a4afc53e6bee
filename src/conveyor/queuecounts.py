"""Queue counts as users see them: the broker's figures, with in-flight filled in from the
workers' heartbeats where the broker cannot count what consumers hold.

Shared by ``conveyor inspect queues``, the dashboard and ``/metrics``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import replace

from .brokers import QueueAdmin, QueueStats
from .events import Event


def queue_names(broker: QueueAdmin, default: str, living: Iterable[Event]) -> list[str]:
    """The queues to count: those the broker lists, the default one and those the living
    processes consume (a broker that cannot list its queues, RabbitMQ, still shows them;
    broadcast queues are each consumer's own and counted by none)."""
    consumed = {str(q) for e in living for q in e.fields.get("queues") or ()}
    return sorted({*broker.queues(), default,
                   *(q for q in consumed if not q.startswith("fanout/"))})


def queue_counts(broker: QueueAdmin, default: str, living: Iterable[Event],
                 names: Sequence[str] = ()) -> list[QueueStats]:
    """Counts of ``names`` (default: every queue :func:`queue_names` lists). Where the broker
    cannot count what consumers hold (RabbitMQ: passive declares see only ready messages), in
    flight is at least what the living processes report running from that queue in their
    heartbeats."""
    beats = list(living)
    found = [broker.stats(name) for name in names or queue_names(broker, default, beats)]
    if broker.exact_counts:
        return found
    running = Counter(str(a.get("queue")) for e in beats for a in e.fields.get("active") or ()
                      if isinstance(a, dict))
    return [replace(s, in_flight=max(s.in_flight, running[s.queue])) for s in found]
