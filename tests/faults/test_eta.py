"""Scenario 9: delayed (ETA) tasks across worker kills and broker restarts."""

from __future__ import annotations

import random
import signal
import time
from datetime import UTC, datetime

import pytest

from conveyor import Conveyor
from tests.faults import faultapp, ledger
from tests.faults.harness import LONG, Figures, Fleet, Target, settled, wait_for
from tests.rabbit_node import PrivateNode

pytestmark = [pytest.mark.slow, pytest.mark.own_server, pytest.mark.timeout(1800 if LONG else 150)]


def test_eta_tasks_across_kills_and_restarts(target: Target, fleet: Fleet, app: Conveyor,
                                             figures: Figures) -> None:
    """9. Tasks due over the next seconds while workers are SIGKILLed and the broker restarts:
    each runs once (reruns only of what a kill or the outage cut short), none before its ETA."""
    count, spread = (2000, 120.0) if LONG else (100, 8.0)
    rng = random.Random(9)
    for _ in range(2):
        fleet.start(concurrency=4)
    etas = {}
    for _ in range(count):
        eta = time.time() + rng.uniform(1.0, spread)
        etas[faultapp.work.apply_async((0.01,), eta=datetime.fromtimestamp(eta, UTC)).id] = eta
    ends = time.time() + spread
    while time.time() < ends:
        time.sleep(rng.uniform(0.1, 0.3) * spread)
        fleet.kill(rng.choice(fleet.alive()))
        if target.server is not None:
            went = time.time()
            target.server.kill(signal.SIGKILL)
            time.sleep(1.0)
            target.server.start()
            fleet.faults.outages.append((went, time.time()))
        fleet.start(concurrency=4)  # after the restart: a worker does not start without it
    try:
        fleet.wait_ended(set(etas), 600 if LONG else 60)
    except AssertionError as exc:  # where the missing ones wait, on a node of our own
        depths = target.server.queue_depths() if isinstance(target.server, PrivateNode) else {}
        raise AssertionError(f"{exc}; non-empty queues (ready, unacked): {depths}") from None
    wait_for(lambda: settled(app), 30, "queue not empty")
    verdict = ledger.check(fleet.ledger, set(etas), fleet.faults)
    runs = ledger.read_runs(fleet.ledger)
    early = [r.task for r in runs if r.started < etas[r.task]]
    late = sorted(r.started - etas[r.task] for r in runs)
    figures.add(**verdict.summary(), kills=len(fleet.faults.killed),
                restarts=len(fleet.faults.outages), early=len(early),
                median_late_seconds=round(late[len(late) // 2], 3),
                max_late_seconds=round(late[-1], 2))
    figures.publish()
    assert verdict.clean, verdict
    assert early == []
