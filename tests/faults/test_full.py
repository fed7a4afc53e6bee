"""Scenario 12: the store runs out of space (SQLite's disk full, Redis at maxmemory with
noeviction) or is read-only (SQLite) while producers publish and a worker runs."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import pytest
import redis

from conveyor import Conveyor
from conveyor.errors import ConveyorError
from tests.faults import faultapp, ledger
from tests.faults.harness import (
    LONG,
    Figures,
    Fleet,
    OwnRabbit,
    Target,
    bind_app,
    settled,
    wait_for,
)

pytestmark = [pytest.mark.slow, pytest.mark.own_server(small=True),
              pytest.mark.timeout(1800 if LONG else 150)]


@contextlib.contextmanager
def resource_alarm(node: OwnRabbit, alarm: str) -> Iterator[Callable[[], None]]:
    """A memory or disk alarm on the private node: RabbitMQ blocks every publishing
    connection. The yielded function lifts it."""
    if alarm == "memory":
        raise_it = ("set_vm_memory_high_watermark", "0.000001")
        lift = ("set_vm_memory_high_watermark", "0.4")
    else:  # a free-disk limit above the free space of the node's disk, then its own again
        limit = node.ctl("eval", "rabbit_disk_monitor:get_disk_free_limit().").strip()
        raise_it = ("set_disk_free_limit", str(shutil.disk_usage(node.base).free + (1 << 30)))
        lift = ("set_disk_free_limit", limit)
    node.ctl(*raise_it)
    wait_for(lambda: alarm in node.ctl("eval", "rabbit_alarm:get_alarms()."), 30,
             f"the {alarm} alarm never went off")
    yield lambda: node.ctl(*lift)
    node.ctl(*lift)
    wait_for(lambda: alarm not in node.ctl("eval", "rabbit_alarm:get_alarms()."), 30,
             f"the {alarm} alarm never cleared")


@contextlib.contextmanager
def no_space(target: Target, alarm: str = "memory") -> Iterator[Callable[[], None]]:
    """Take the store's space away; the yielded function gives it back. On RabbitMQ: raise
    ``alarm`` (memory or disk)."""
    if target.kind == "sqlite":
        assert target.workdir is not None
        filler = target.workdir / "filler"
        with open(filler, "wb") as fh, contextlib.suppress(OSError):
            while True:  # until ENOSPC
                fh.write(b"\0" * (1 << 20))
                fh.flush()
                os.fsync(fh.fileno())
        yield lambda: filler.unlink(missing_ok=True)
        filler.unlink(missing_ok=True)
    elif target.kind == "amqp":
        with resource_alarm(target.server, alarm) as lift:
            yield lift
    else:
        client = redis.Redis(port=target.server.port)
        used = int(client.info("memory")["used_memory"])
        client.config_set("maxmemory-policy", "noeviction")
        client.config_set("maxmemory", str(used + (256 << 10)))
        yield lambda: client.config_set("maxmemory", "0")
        client.config_set("maxmemory", "0")
        client.close()


def publish_until_refused(limit: float) -> tuple[list[str], list[str], set[str]]:
    """Publish chunks until the store refuses for a second; returns accepted ids, refusals and
    the ids whose publish raised (they may still run once: a message may have been stored)."""
    accepted: list[str] = []
    refusals: list[str] = []
    raised: set[str] = set()
    first = None
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline and (first is None or time.monotonic() - first < 1.0):
        chunk = [faultapp.work.s(0.01).set(task_id=str(uuid.uuid4())) for _ in range(20)]
        try:
            sent = faultapp.app.send_many(chunk)
        except ConveyorError as exc:
            refusals.append(f"{type(exc).__name__}: {exc}")
            raised |= {str(sig.id) for sig in chunk}
            first = first or time.monotonic()
            time.sleep(0.05)
            continue
        except Exception as exc:  # a driver error that escaped its conversion
            pytest.fail(f"a publish raised {type(exc).__name__}, not a Conveyor error: {exc}")
        accepted += [r.id for r in sent]
    return accepted, refusals, raised


def test_store_out_of_space(target: Target, fleet: Fleet, app: Conveyor,
                            figures: Figures) -> None:
    """12. Producers get a clear Conveyor error while the store is full (on RabbitMQ: a memory
    alarm); what was queued is not lost; the worker goes on by itself once there is space
    again."""
    out_of_space(target, fleet, app, figures, "memory")


@pytest.mark.brokers("amqp")  # a RabbitMQ alarm (a full disk for SQLite is the case above)
def test_rabbitmq_disk_alarm(target: Target, fleet: Fleet, app: Conveyor,
                             figures: Figures) -> None:
    """12 (RabbitMQ). The same under a disk alarm: the node's free-disk limit set above the
    free space, then back."""
    out_of_space(target, fleet, app, figures, "disk")


def out_of_space(target: Target, fleet: Fleet, app: Conveyor, figures: Figures,
                 alarm: str) -> None:
    if target.kind == "amqp":  # a blocked publish waits for its confirm this long, then raises
        bind_app(replace(target, url=f"{target.url}&confirm_timeout=2"))
    before = [r.id for r in faultapp.app.send_many([faultapp.work.s(0.05) for _ in range(100)])]
    worker = fleet.start(concurrency=2)
    wait_for(lambda: ledger.ended_ids(fleet.ledger), 60, "the worker never started")
    went = time.time()
    with no_space(target, alarm) as give_back:
        accepted, refusals, raised = publish_until_refused(60)
        time.sleep(2.0)  # the worker meets the full store too
        give_back()
        back = time.time()
    fleet.faults.outages.append((went, back))
    after = [r.id for r in faultapp.app.send_many([faultapp.work.s(0.01) for _ in range(50)])]
    ids = set(before) | set(accepted) | set(after)
    took = fleet.wait_ended(ids, 300 if LONG else 90)
    wait_for(lambda: settled(app), 30, "queue not empty")
    verdict = ledger.check(fleet.ledger, ids, fleet.faults, maybe=raised)
    figures.add(**verdict.summary(), refused=len(refusals),
                error=refusals[0] if refusals else "", recovery_seconds=round(took, 1),
                **({"alarm": alarm} if target.kind == "amqp" else {}))
    figures.publish()
    assert refusals, "the full store never refused a publish"
    marker = {"sqlite": "full", "redis": "maxmemory",
              "amqp": "memory or disk alarm"}[target.kind]
    assert all(marker in text for text in refusals), refusals[:3]
    if target.kind == "amqp":  # after confirm_timeout, as unavailable (a publish may retry)
        assert all(text.startswith("BrokerUnavailable: RabbitMQ did not confirm")
                   for text in refusals), refusals[:3]
    assert verdict.clean, verdict
    assert worker.poll() is None


@pytest.mark.brokers("sqlite")  # read-only applies to a database file
def test_sqlite_read_only(target: Target, fleet: Fleet, app: Conveyor, tmp_path: Path,
                          figures: Figures) -> None:
    """12 (SQLite). A producer whose view of the database is read-only (a read-only bind mount
    of its directory) gets a clear error; the queue and the worker are unharmed."""
    assert target.workdir is not None
    before = {r.id for r in faultapp.app.send_many([faultapp.work.s(0.01) for _ in range(50)])}
    fleet.start(concurrency=2)
    view = tmp_path / "read-only"
    view.mkdir()
    subprocess.run(["mount", "--bind", str(target.workdir), str(view)], check=True)
    try:
        subprocess.run(["mount", "-o", "remount,bind,ro", str(view)], check=True)
        producer = Conveyor("faults-ro", broker=f"sqlite:///{view}/own.db")
        with pytest.raises(ConveyorError) as refused:
            producer.send_task("tests.faults.faultapp.work", [0.01])
        producer.close()
    finally:
        subprocess.run(["umount", "-l", str(view)], check=False)
    after = {faultapp.work.delay(0.01).id}
    fleet.wait_ended(before | after, 60)
    wait_for(lambda: settled(app), 30, "queue not empty")
    verdict = ledger.check(fleet.ledger, before | after)
    figures.add(**verdict.summary(), error=f"{type(refused.value).__name__}: {refused.value}")
    figures.publish()
    assert "read-only" in str(refused.value) or "readonly" in str(refused.value)
    assert verdict.clean, verdict
