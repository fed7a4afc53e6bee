"""RabbitMQ id claims with real worker processes: a copy of an id that already ran is acked
unrun; a copy whose id is claimed by a running worker waits, and runs once that worker is
SIGKILLed and its claim runs out."""

from __future__ import annotations

import os
import signal
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from conveyor import Conveyor
from conveyor.brokers import queue_admin
from tests.integration.amqp_env import amqp_env, bound_app
from tests.integration.conftest import trace_lines, wait_for
from tests.integration.test_amqp_processes import Workers

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]

LEASE = 2.0  # the workers' lease, and so their id claims' TTL
RERUN_MARGIN = 0.25  # seconds past the claim's expiry: a deferral's trip through RabbitMQ, load


@pytest.fixture
def env(tmp_path: Path) -> Iterator[dict[str, str]]:
    with amqp_env(tmp_path) as found:
        yield found


@pytest.fixture
def app(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Iterator[Conveyor]:
    with bound_app(env, monkeypatch) as bound:
        yield bound


@pytest.fixture
def workers(env: dict[str, str]) -> Iterator[Workers]:
    started = Workers(env)
    yield started
    started.stop_all()


def _drained(app: Conveyor) -> bool:
    """Nothing ready, delayed or held in the default queue, seen twice (counts are snapshots)."""
    def empty() -> bool:
        stats = queue_admin(app.broker).stats("default")
        return stats.ready + stats.delayed + stats.in_flight == 0
    return empty() and (time.sleep(0.5) or empty())


def _runs(env: dict[str, str], ledger: str, tag: str) -> list[str]:
    return [line for line in trace_lines(env, ledger) if line.split()[0] == tag]


def test_a_copy_of_a_finished_id_is_acked_without_running(app: Conveyor, workers: Workers,
                                                          env: dict[str, str]) -> None:
    from tests.integration import amqp_app

    workers.start("-c", "2", "--lease", "2")
    task_id = f"fin-{uuid.uuid4().hex[:8]}"
    assert amqp_app.record.apply_async(("fin",), task_id=task_id).get(timeout=30) == "fin"
    amqp_app.record.apply_async(("fin",), task_id=task_id)  # the same id, published again
    wait_for(lambda: _drained(app), timeout=30)
    assert len(_runs(env, "started", "fin")) == 1


def test_a_claimed_id_waits_and_runs_after_its_holder_is_killed(
        app: Conveyor, workers: Workers, env: dict[str, str]) -> None:
    from tests.integration import amqp_app

    holder = workers.start("-c", "1", "--lease", str(LEASE))
    task_id = f"held-{uuid.uuid4().hex[:8]}"
    result = amqp_app.record.apply_async(("held", 4.0), task_id=task_id)
    wait_for(lambda: _runs(env, "started", "held"), timeout=30)
    workers.start("-c", "1", "--lease", str(LEASE))
    amqp_app.record.apply_async(("held", 4.0), task_id=task_id)  # a copy for the other worker
    time.sleep(2.0)
    assert len(_runs(env, "started", "held")) == 1  # the copy waits: not run concurrently
    os.kill(holder.pid, signal.SIGKILL)
    killed = time.monotonic()
    left = app.backend.value_ttl(f"idclaim:{app.name}:{task_id}")  # type: ignore[attr-defined]
    holder.wait()
    assert left is not None and 0 < left <= LEASE  # the dead holder's claim, still running out
    wait_for(lambda: len(_runs(env, "started", "held")) == 2, timeout=30, every=0.02)
    rerun = time.monotonic() - killed
    # The waiting copies look again when the claim runs out (not up to a quarter lease
    # later), so the rerun starts as it does, within a lease of its last renewal.
    assert rerun < left + RERUN_MARGIN, f"rerun {rerun:.2f} s after the kill, claim {left:.2f} s"
    assert result.get(timeout=40) == "held"  # the killed run's message, or the copy, ran
    wait_for(lambda: _drained(app), timeout=30)
    started, done = _runs(env, "started", "held"), _runs(env, "done", "held")
    assert len(started) == 2  # the killed run, then one run once its claim ran out
    assert len(done) == 1
    assert started[0].split()[1] == str(holder.pid) != started[1].split()[1]
