"""Scenario 4: the broker killed and restarted under load (for SQLite: its writer killed
mid-commit)."""

from __future__ import annotations

import random
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import uuid

import pytest

from conveyor import Conveyor
from conveyor.errors import BrokerError
from tests.faults import faultapp, ledger
from tests.faults.harness import (
    LONG,
    ROOT,
    Figures,
    Fleet,
    Target,
    settled,
    wait_for,
)

pytestmark = [pytest.mark.slow, pytest.mark.own_server, pytest.mark.timeout(1800 if LONG else 150)]


#: How a publish to a server that is down fails, per broker.
UNREACHABLE = {"redis": "BrokerUnavailable: cannot reach",
               "amqp": "BrokerUnavailable: RabbitMQ at"}


class Stream(threading.Thread):
    """Publishes chunks of short tasks until stopped: the ids whose publish returned, and when
    and how each refused publish failed."""

    def __init__(self, chunk: int = 10) -> None:
        super().__init__(daemon=True)
        self.chunk = chunk
        self.accepted: list[str] = []
        self.refused: list[tuple[float, str]] = []
        self.raised: set[str] = set()  # ids of refused publishes: the broker may hold them
        self.halt = threading.Event()

    def run(self) -> None:
        while not self.halt.wait(0.02):
            ids = [uuid.uuid4().hex for _ in range(self.chunk)]
            try:
                sent = faultapp.app.send_many([faultapp.work.s(0.02).set(task_id=i)
                                               for i in ids])
            except BrokerError as exc:  # the link may have dropped after the broker took it
                self.refused.append((time.time(), f"{type(exc).__name__}: {exc}"))
                self.raised.update(ids)
                continue
            self.accepted += [r.id for r in sent]

    def stop(self) -> None:
        self.halt.set()
        self.join()


def first_start_after(fleet: Fleet, at: float) -> float:
    return min((r.started for r in ledger.read_runs(fleet.ledger) if r.started > at),
               default=float("inf"))


@pytest.mark.brokers("redis", "amqp")
def test_broker_killed_and_restarted(target: Target, fleet: Fleet, app: Conveyor,
                                     figures: Figures) -> None:
    """4. Redis or RabbitMQ SIGKILLed and restarted under load: every publish that returned
    still runs, publishes during the outage raise, consumers resume within 10 s."""
    cycles, up, down = (5, 20.0, 5.0) if LONG else (2, 2.0, 2.0)
    if target.kind == "amqp" and not LONG:
        cycles = 1  # a node takes seconds to boot; the long run restarts it five times
    for _ in range(2):
        fleet.start(concurrency=4)
    stream = Stream(chunk=20 if LONG else 3)
    stream.start()
    resumes = []
    try:
        for _ in range(cycles):
            time.sleep(up)
            target.server.kill(signal.SIGKILL)
            went = time.time()
            time.sleep(down)
            target.server.start()
            back = time.time()
            fleet.faults.outages.append((went, back))
            wait_for(lambda b=back: first_start_after(fleet, b) < float("inf"), 30,
                     "no task started after the restart")
            resumes.append(first_start_after(fleet, back) - back)
        time.sleep(up)
    finally:
        stream.stop()
    ids = set(stream.accepted)
    fleet.wait_ended(ids, 600 if LONG else 60)
    wait_for(lambda: settled(app), 30, "queue not empty")
    verdict = ledger.check(fleet.ledger, ids, fleet.faults, maybe=stream.raised)
    during = [text for at, text in stream.refused
              if any(a <= at <= b for a, b in fleet.faults.outages)]
    figures.add(**verdict.summary(), restarts=cycles, outage_seconds=down,
                publishes_refused=len(stream.refused), refused_during_outage=len(during),
                max_resume_seconds=round(max(resumes), 2),
                error=stream.refused[0][1] if stream.refused else "")
    figures.publish()
    assert verdict.clean, verdict
    assert during and all(text.startswith(UNREACHABLE[target.kind]) for text in during), during[:3]
    assert max(resumes) < 10, resumes
    assert all(p.poll() is None for p in fleet.procs)  # the workers rode it out themselves


@pytest.mark.brokers("sqlite")  # the writer of a server broker is the server: see above
def test_sqlite_writer_killed_mid_commit(target: Target, fleet: Fleet, app: Conveyor,
                                         figures: Figures) -> None:
    """4 (SQLite). Producer processes SIGKILLed at random while they publish: every publish
    that returned runs, the database stays sound, the workers go on."""
    kills = 20 if LONG else 4
    for _ in range(2):
        fleet.start(concurrency=4)
    rng, ids = random.Random(4), set()
    for _ in range(kills):
        writer = subprocess.Popen([sys.executable, "-m", "tests.faults.producers", "stream", "5"],
                                  cwd=ROOT, env=fleet.env, stdout=subprocess.PIPE)
        assert writer.stdout is not None
        assert writer.stdout.readline() == b"ready\n"
        time.sleep(rng.uniform(0.2, 1.0))
        writer.kill()
        writer.wait()
        out = writer.stdout.read()
        writer.stdout.close()
        lines = out.split(b"\n")[:-1]  # an unfinished last line: its publish may not have returned
        ids |= {i.decode() for line in lines for i in line.split()}
    took = fleet.wait_ended(ids, 600 if LONG else 60)
    wait_for(lambda: settled(app), 30, "queue not empty")
    with sqlite3.connect(target.url.removeprefix("sqlite:///")) as conn:
        integrity = conn.execute("PRAGMA integrity_check").fetchone()[0]
    verdict = ledger.check(fleet.ledger, ids, fleet.faults)
    figures.add(**verdict.summary(), writers_killed=kills, integrity=integrity,
                drain_seconds=round(took, 1))
    figures.publish()
    assert verdict.clean, verdict
    assert integrity == "ok"
    assert all(p.poll() is None for p in fleet.procs)
