"""Scenarios 1 and 2: workers killed with SIGKILL, at random and in the claim window."""

from __future__ import annotations

import random
import time

import pytest

from conveyor import Conveyor
from tests.faults import ledger
from tests.faults.harness import LONG, Figures, Fleet, Target, enqueue, settled, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800 if LONG else 150)]

LEASE = 2.0


def test_kill9_random_workers(target: Target, fleet: Fleet, app: Conveyor,
                              figures: Figures) -> None:
    """1. SIGKILL a random worker every few seconds: nothing lost, reruns only of what the
    killed worker held, and those run again within the lease."""
    count, low, high, every = (2000, 0.2, 2.0, (2.0, 6.0)) if LONG else (240, 0.01, 0.1,
                                                                         (0.8, 1.6))
    size = 4 if LONG else 2
    for _ in range(size):
        fleet.start(concurrency=4, lease=LEASE)
    ids = set(enqueue(count, low, high))
    rng, started = random.Random(1), time.monotonic()
    while not ids <= ledger.ended_ids(fleet.ledger):
        assert time.monotonic() - started < (1500 if LONG else 100), fleet.log_tail()
        time.sleep(rng.uniform(*every))
        fleet.kill(rng.choice(fleet.alive()))
        fleet.start(concurrency=4, lease=LEASE)
    wait_for(lambda: settled(app), 30, "queue not empty after the last task")
    verdict = ledger.check(fleet.ledger, ids, fleet.faults)
    delays = ledger.rerun_delays(fleet.ledger, fleet.faults)
    figures.add(**verdict.summary(), kills=len(fleet.faults.killed),
                seconds=round(time.monotonic() - started, 1),
                max_rerun_after_kill=round(max(delays, default=0.0), 2))
    figures.publish()
    assert verdict.clean, verdict
    assert max(delays, default=0.0) < LEASE + 20  # the lease, plus a restart on a loaded box


def test_kill9_between_claim_and_bookkeeping(target: Target, fleet: Fleet, app: Conveyor,
                                             figures: Figures) -> None:
    """2. Each worker SIGKILLs itself right after a claim handed it messages and before it
    recorded them as held (the CONVEYOR_TEST_CRASH_AFTER_CLAIM hook): nothing is lost."""
    count, crashes = (2000, 40) if LONG else (150, 6)
    ids = set(enqueue(count, 0.01, 0.05))
    rng, started = random.Random(2), time.monotonic()
    for _ in range(crashes):
        proc = fleet.start(concurrency=2, lease=LEASE,
                           env={"CONVEYOR_TEST_CRASH_AFTER_CLAIM": str(rng.randint(1, 8))})
        proc.wait(60)
        fleet.faults.kill(proc.pid)
    crashed = sum(p.returncode == -9 for p in fleet.procs)
    fleet.start(concurrency=4, lease=LEASE)
    fleet.wait_ended(ids, 600 if LONG else 90)
    wait_for(lambda: settled(app), 30, "queue not empty after the last task")
    verdict = ledger.check(fleet.ledger, ids, fleet.faults)
    figures.add(**verdict.summary(), crashes_in_window=crashed,
                seconds=round(time.monotonic() - started, 1))
    figures.publish()
    assert crashed == crashes, "a worker ran out of work before its crash point"
    assert verdict.clean, verdict
