"""Per-queue concurrency: ``-Q emails:4,reports:1,default`` gives each numbered queue its own
slots inside one worker, and the queues without a number share the rest of ``-c``.

So 50 queued reports never delay an e-mail: the e-mail slots take only e-mails. In the process
pool each slot is a child consuming only its group's queues; in the thread and async pools each
group is one consumer with its own slots and prefetch bound in the one process.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from ..errors import ConfigurationError


@dataclass(frozen=True, slots=True)
class QueueGroup:
    """Queues consumed together by ``slots`` concurrent tasks of their own."""

    queues: tuple[str, ...]
    slots: int

    def describe(self) -> str:
        return f"{','.join(self.queues)}:{self.slots}"


def parse_queues(spec: str) -> list[tuple[str, int | None]]:
    """``"emails:4,reports:1,default"`` -> ``[("emails", 4), ("reports", 1),
    ("default", None)]``; ConfigurationError for a bad count or a queue named twice."""
    found: list[tuple[str, int | None]] = []
    for part in (p.strip() for p in spec.split(",")):
        if not part:
            continue
        name, colon, count = part.rpartition(":") if ":" in part else (part, "", "")
        if colon:
            if not count.isdigit() or int(count) < 1:
                raise ConfigurationError(
                    f"-Q {part!r}: the number after ':' is the queue's slots, a whole number >= 1")
            found.append((name.strip(), int(count)))
        else:
            found.append((part, None))
    names = [name for name, _ in found]
    if not names or not all(names):
        raise ConfigurationError(f"-Q {spec!r}: name at least one queue")
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise ConfigurationError(f"-Q lists {', '.join(twice)} more than once")
    return found


def plan_groups(items: Sequence[tuple[str, int | None]], concurrency: int | None,
                cpus: int) -> list[QueueGroup]:
    """The slot groups of a worker: one per numbered queue, then one for the rest (if any).

    ``concurrency`` (``-c``) is the total; without it, the CPU count for the shared group (at
    least one slot) on top of the numbered slots' sum, when it is larger.
    """
    numbered = [QueueGroup((name, ), n) for name, n in items if n is not None]
    shared = tuple(name for name, n in items if n is None)
    fixed = sum(g.slots for g in numbered)
    total = concurrency if concurrency is not None else (
        max(cpus, fixed + 1) if shared else fixed)
    rest = total - fixed
    if shared and rest < 1:
        raise ConfigurationError(
            f"-c {total} leaves no slot for {','.join(shared)}: the numbered queues take {fixed}")
    if not shared and rest != 0:
        raise ConfigurationError(
            f"-c {total} does not match the numbered queues' {fixed} slots: name a queue without"
            " a number to use the rest, or drop -c")
    return numbered + ([QueueGroup(shared, rest)] if shared else [])


def group_prefetch(group: QueueGroup, prefetch: int | None, concurrency: int) -> int:
    """A group's prefetch bound: its slots, or its share of ``--prefetch`` if that is more."""
    if prefetch is None:
        return group.slots
    return max(group.slots, math.ceil(prefetch * group.slots / max(concurrency, 1)))
