"""Scenario 8: poison tasks that kill their process, segfault, or exceed a memory limit."""

from __future__ import annotations

import time

import pytest

from conveyor import Conveyor
from tests.faults import faultapp, ledger
from tests.faults.harness import LONG, Figures, Fleet, Target, durations, settled, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.timeout(2400 if LONG else 150)]

#: The address space a worker process may use: far more than it needs, less than a hog asks.
MEMORY_LIMIT = 3 << 30


def test_poison_tasks_are_dead_lettered(target: Target, fleet: Fleet, app: Conveyor,
                                        figures: Figures) -> None:
    """8. Tasks that SIGKILL their process, segfault, or ask for more memory than the limit,
    among ordinary ones on a process pool: each poison task is dead-lettered with the reason
    (those that kill their process after the delivery limit, 2), the others all run."""
    count, each = (2000, 5) if LONG else (60, 1)
    fleet.start(concurrency=2, lease=1.5, pool="process",
                prefix=["prlimit", f"--as={MEMORY_LIMIT}"])
    spans = durations(count, 0.2, 2.0) if LONG else durations(count, 0.01, 0.1)
    normal, poison = [], {}
    for i, seconds in enumerate(spans):
        normal.append(faultapp.work.delay(seconds).id)
        if i % (count // (3 * each)) == 0 and len(poison) < 3 * each:
            for task in (faultapp.kills_itself, faultapp.segfaults, faultapp.hogs_memory):
                poison[task.delay().id] = task.name.rsplit(".", 1)[-1]
    started = time.monotonic()
    # the long version is 2,200 s of work for 2 children, plus their restarts: budget for it
    fleet.wait_ended(set(normal), sum(spans) / 2 * 1.25 + 120 if LONG else 90)
    flowed = time.monotonic() - started

    def dead() -> dict[str, str]:
        found = app.broker.dead_letters("default", limit=1000)  # type: ignore[attr-defined]
        return {d.envelope.id: d.reason for d in found}

    wait_for(lambda: set(poison) <= set(dead()), 120, "poison tasks not all dead-lettered")
    wait_for(lambda: settled(app), 30, "queue not empty")
    reasons = dead()
    verdict = ledger.check(fleet.ledger, normal, fleet.faults, maybe=set(poison))
    unexplained = sorted(set(verdict.duplicated) - set(poison))
    by_kind = {kind: sorted({reasons[i].split(":")[0] for i, k in poison.items() if k == kind})
               for kind in set(poison.values())}
    figures.add(**verdict.summary(), poison=len(poison), normal_seconds=round(flowed, 1),
                reasons=by_kind, worker_alive=fleet.procs[0].poll() is None)
    figures.publish()
    assert not verdict.lost and not unexplained and not verdict.unexpected, verdict
    for task_id, kind in poison.items():
        expected = "failed after 0 retries: MemoryError" if kind == "hogs_memory" else (
            "delivery limit reached")
        assert reasons[task_id].startswith(expected), (kind, reasons[task_id])
    assert fleet.procs[0].poll() is None  # the supervisor lives on
    assert not any(ledger_id in normal for ledger_id in reasons)
