"""Scenario 11: the same task ids enqueued by 8 producer processes at once."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from conveyor import Conveyor
from tests.faults import ledger
from tests.faults.harness import LONG, ROOT, Figures, Fleet, Target, settled, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800 if LONG else 150)]


def test_duplicate_ids_from_concurrent_producers(target: Target, fleet: Fleet, app: Conveyor,
                                                 figures: Figures) -> None:
    """11. 8 producers enqueue the same ids at the same moment while workers run: each id is
    one stored job (it runs once), or the producer got a clear Conveyor error. RabbitMQ stores
    each publish as a message: its workers claim the id in the result backend before a run."""
    count = 1000 if LONG else 60
    for _ in range(2):
        fleet.start(concurrency=4)
    start = time.time() + 3.0
    producers = [subprocess.Popen(
        [sys.executable, "-m", "tests.faults.producers", "same-ids", str(count), str(seed),
         repr(start)], cwd=ROOT, env=fleet.env, stdout=subprocess.PIPE, text=True)
        for seed in range(8)]
    lines = [line.split() for p in producers for line in p.communicate(timeout=120)[0].splitlines()]
    assert all(p.returncode == 0 for p in producers)
    accepted = {words[1] for words in lines if words[0] == "ok"}
    errors = sorted({" ".join(words[2:]) for words in lines if words[0] == "err"})
    fleet.wait_ended(accepted, 600 if LONG else 60)
    wait_for(lambda: settled(app), 30, "queue not empty")
    time.sleep(1.0)  # a second copy of an id would have started by now
    verdict = ledger.check(fleet.ledger, accepted, maybe={f"dup-{i}" for i in range(count)})
    figures.add(**verdict.summary(), producers=8, calls=len(lines), accepted_ids=len(accepted),
                errors=errors)
    figures.publish()
    assert len(lines) == 8 * count
    assert verdict.clean, verdict
