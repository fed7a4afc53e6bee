"""Scenarios 6 and 7: a worker frozen past its lease, and tasks longer than the lease."""

from __future__ import annotations

import signal
import time

import pytest

from conveyor import Conveyor, State
from tests.faults import ledger
from tests.faults.harness import LONG, Figures, Fleet, Target, enqueue, settled, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800 if LONG else 150)]


def started_by(fleet: Fleet, pid: int) -> set[str]:
    return {r.task for r in ledger.read_runs(fleet.ledger) if r.pid == pid}


def lease_env(target: Target) -> dict[str, str]:
    """RabbitMQ has no lease: a frozen consumer's messages go elsewhere once RabbitMQ drops its
    connection for missed heartbeats, so the zombie's heartbeat is 1 s (about 2-3 s to
    detect)."""
    if target.kind != "amqp":
        return {}
    return {"CONVEYOR_BROKER_URL": f"{target.url}&heartbeat=1"}


def test_sigstop_past_the_lease(target: Target, fleet: Fleet, app: Conveyor,
                                figures: Figures) -> None:
    """6. SIGSTOP a worker mid-task past its lease; another worker runs the tasks; SIGCONT:
    the late results and acks are refused, each task has exactly one committed outcome."""
    held, seconds = (16, 4.0) if LONG else (4, 2.0)
    zombie = fleet.start(concurrency=held, lease=1.0, env=lease_env(target))
    ids = set(enqueue(held, seconds, seconds))
    wait_for(lambda: started_by(fleet, zombie.pid) == ids, 60, "the zombie never started all")
    fleet.kill(zombie, signal.SIGSTOP)
    fleet.start(concurrency=held, lease=1.0)
    try:
        wait_for(lambda: len([r for r in ledger.read_runs(fleet.ledger) if r.ended]) == held,
                 60, "the tasks never finished elsewhere")
    finally:
        zombie.send_signal(signal.SIGCONT)
    resumed = time.monotonic()
    wait_for(lambda: len([r for r in ledger.read_runs(fleet.ledger) if r.ended]) == 2 * held,
             60, "the resumed zombie never finished its runs")
    wait_for(lambda: settled(app), 30, "queue not empty")
    winners = {r.task: r.attempt for r in ledger.read_runs(fleet.ledger) if r.pid != zombie.pid}
    records = dict(zip(ids, app.backend.get_many(list(ids)), strict=True))
    committed = {t: (r.state, r.attempt) for t, r in records.items() if r is not None}
    refused = sum(log.read_text().count("was lost; another worker owns it")
                  for log in fleet.logs.iterdir())
    verdict = ledger.check(fleet.ledger, ids, fleet.faults)
    figures.add(**verdict.summary(), zombie_settles_refused=refused,
                seconds_resume_to_refusal=round(time.monotonic() - resumed, 1))
    figures.publish()
    assert verdict.clean, verdict
    assert committed == {t: (State.SUCCESS.value, winners[t]) for t in ids}
    # SQLite refuses the zombie's ack with LeaseLost (logged), and so does RabbitMQ (the channel
    # that delivered the message is closed); on Redis the winner's ack already removed the
    # message, and a settle of a message that is gone is a no-op there.
    assert refused == (0 if target.kind == "redis" else held)


def test_task_longer_than_the_lease(target: Target, fleet: Fleet, app: Conveyor,
                                    figures: Figures) -> None:
    """7. Tasks three times longer than a 1 s lease on several live workers: each runs once,
    never twice at once."""
    count, seconds, size = (40, 5.0, 4) if LONG else (6, 3.0, 2)
    for _ in range(size):
        fleet.start(concurrency=2, lease=1.0)
    ids = set(enqueue(count, seconds, seconds))
    took = fleet.wait_ended(ids, 600 if LONG else 90)
    wait_for(lambda: settled(app), 30, "queue not empty")
    verdict = ledger.check(fleet.ledger, ids)
    figures.add(**verdict.summary(), task_seconds=seconds, lease=1.0, seconds=round(took, 1))
    figures.publish()
    assert verdict.clean, verdict
