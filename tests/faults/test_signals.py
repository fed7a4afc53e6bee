"""Scenarios 3 and 10: SIGTERM during a blocking read, and graceful shutdown under load."""

from __future__ import annotations

import random
import signal
import threading
import time

import pytest

from conveyor import Conveyor
from tests.faults import faultapp, ledger
from tests.faults.harness import (
    LONG,
    Figures,
    Fleet,
    Target,
    enqueue,
    in_flight,
    settled,
    wait_for,
)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800 if LONG else 150)]


class Producer(threading.Thread):
    """Publishes one short task every ``every`` seconds until stopped; keeps the ids."""

    def __init__(self, every: float) -> None:
        super().__init__(daemon=True)
        self.every = every
        self.ids: list[str] = []
        self.halt = threading.Event()

    def run(self) -> None:
        while not self.halt.wait(self.every):
            self.ids.append(faultapp.work.delay(0.01).id)


def test_sigterm_during_blocking_read(target: Target, fleet: Fleet, app: Conveyor,
                                      figures: Figures) -> None:
    """3. Idle workers, blocked waiting for messages, get SIGTERM while a producer keeps
    publishing: each exits at once and cleanly, and nothing is lost or run twice."""
    rounds = 30 if LONG else 5
    rng = random.Random(3)
    fleet.start(concurrency=2)
    victim = fleet.start(concurrency=2)
    producer = Producer(every=0.05)
    producer.start()
    exits = []
    try:
        for _ in range(rounds):
            time.sleep(rng.uniform(0.5, 1.5))
            wait_for(lambda v=victim: any(r.pid == v.pid for r in ledger.read_runs(fleet.ledger)),
                     60, "the new worker never ran a task")  # its signal handlers are set
            stopped = time.monotonic()
            victim.send_signal(signal.SIGTERM)
            assert victim.wait(30) == 0
            exits.append(time.monotonic() - stopped)
            victim = fleet.start(concurrency=2)
    finally:
        producer.halt.set()
        producer.join()
    ids = set(producer.ids)
    fleet.wait_ended(ids, 60)
    wait_for(lambda: settled(app), 30, "queue not empty after the last task")
    verdict = ledger.check(fleet.ledger, ids)  # no fault excuses a rerun here
    figures.add(**verdict.summary(), sigterms=rounds,
                max_exit_seconds=round(max(exits), 2))
    figures.publish()
    assert verdict.clean, verdict


def test_graceful_shutdown_under_load(target: Target, fleet: Fleet, app: Conveyor,
                                      figures: Figures) -> None:
    """10. A busy worker holding prefetched tasks gets SIGTERM: it finishes what runs, gives
    the prefetched ones back at once (the lease is 60 s: nothing waits for it), 0 lost, 0 run
    twice."""
    count, low, high, rounds = (2000, 0.2, 2.0, 8) if LONG else (120, 0.05, 0.15, 2)
    ids = set(enqueue(count, low, high))
    given_back, exits = [], []
    for _ in range(rounds):
        worker = fleet.start("--prefetch", "16", concurrency=2, lease=60.0)
        wait_for(lambda: in_flight(app) >= 10, 60, "the worker never prefetched")
        time.sleep(1.0)
        stopped = time.monotonic()
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(60) == 0
        exits.append(time.monotonic() - stopped)
        assert in_flight(app) == 0, "prefetched tasks were not given back at exit"
        given_back.append(app.broker.stats("default").ready)  # type: ignore[attr-defined]
    back = time.monotonic()
    for _ in range(3 if LONG else 1):
        fleet.start(concurrency=8 if LONG else 4, lease=60.0)
    fleet.wait_ended(ids, 1200 if LONG else 60)
    wait_for(lambda: settled(app), 30, "queue not empty after the last task")
    verdict = ledger.check(fleet.ledger, ids)
    figures.add(**verdict.summary(), sigterms=rounds, left_in_queue_at_exit=given_back,
                max_exit_seconds=round(max(exits), 2),
                drain_after_restart_seconds=round(time.monotonic() - back, 1))
    figures.publish()
    assert verdict.clean, verdict
