"""The SQLite store shared by real OS processes: no double delivery, crash recovery, doorbell.

Each child is ``python -c`` running :func:`child` from this module; it talks back in lines on
stdout. No mocks: the processes meet only through the database file and its doorbell directory.
"""

from __future__ import annotations

import asyncio
import json
import signal
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from conveyor.brokers import Envelope, StoredResult, open_store
from tests import children as harness
from tests.children import say

pytestmark = [pytest.mark.slow, pytest.mark.timeout(60)]

ROOT = Path(__file__).resolve().parents[2]
CHILD = "import sys; from tests.integration.test_sqlite_processes import child; child(sys.argv[1:])"


def env(body: bytes = b"x", queue_name: str = "q") -> Envelope:
    return Envelope(id=str(uuid.uuid4()), queue=queue_name, body=body)


# -- the children -----------------------------------------------------------------------------


def child(argv: list[str]) -> None:
    harness.run(MODES, argv)


async def measure_idle(url: str) -> None:
    """CPU seconds and claim count of an idle consumer over 2 s, then of one bare 1 s _wait."""
    store = open_store(url)
    claims = 0
    real_claim = store._claim

    async def counting(*args: Any) -> Any:
        nonlocal claims
        claims += 1
        return await real_claim(*args)

    store._claim = counting
    consumer = store.consume(["q"], prefetch=1, lease=30)
    waiting = asyncio.ensure_future(anext(consumer))
    await asyncio.sleep(0.3)
    cpu, before = time.process_time(), claims
    await asyncio.sleep(2.0)
    consumer_cpu, consumer_claims = time.process_time() - cpu, claims - before
    await consumer.close()
    await asyncio.gather(waiting, return_exceptions=True)
    cpu, started = time.process_time(), time.monotonic()
    await store._wait(["q"], 1.0)
    say(json.dumps({"consumer_cpu": consumer_cpu, "claims": consumer_claims,
                    "wait_cpu": time.process_time() - cpu,
                    "wait_seconds": time.monotonic() - started}))
    await store.aclose()


async def wait_result(url: str, task_id: str, how: str) -> None:
    """Block for the final result (sync ``wait`` or ``await_final``); print when it came."""
    store = open_store(url)
    say("ready")
    if how == "sync":
        record = await asyncio.to_thread(store.wait, task_id, 20)
    else:
        record = await store.await_final(task_id, 20)
    say(json.dumps({"at": time.time(), "state": record.state if record else None}))
    await store.aclose()


MODES: dict[str, Any] = {**harness.MODES, "idle": measure_idle, "result": wait_result}


# -- the parent side --------------------------------------------------------------------------


class Child(harness.Child):
    code = CHILD


@pytest.fixture
def url(tmp_path: Path) -> Iterator[str]:
    yield f"sqlite:///{tmp_path}/shared.db"


@pytest.fixture
def children() -> Iterator[list[Child]]:
    started: list[Child] = []
    yield started
    for one in started:
        one.kill()


def test_concurrent_consumer_processes_get_every_message_exactly_once(
    url: str, children: list[Child]
) -> None:
    store = open_store(url)
    sent = [env() for _ in range(1000)]
    store.publish(sent)
    children.extend(Child("drain", url, "1.5") for _ in range(4))
    for one in children:
        assert one.line() == "ready"
    for _ in range(10):  # more arrive while they compete
        batch = [env() for _ in range(100)]
        store.publish(batch)
        sent += batch
        time.sleep(0.02)
    received = [line for one in children for line in one.rest()]
    assert len(received) == len(sent)
    assert sorted(received) == sorted(e.id for e in sent)
    assert sum(1 for one in children if one.proc.returncode == 0) == 4
    stats = store.stats("q")
    assert (stats.ready, stats.in_flight) == (0, 0)
    store.close()


async def test_sigkilled_consumer_loses_its_deliveries_within_the_lease(
    url: str, children: list[Child]
) -> None:
    store = open_store(url)
    store.publish([env() for _ in range(5)])
    holder = Child("hold", url, "5")
    children.append(holder)
    held = dict(holder.line().split() for _ in range(5))
    assert holder.line() == "holding"
    await asyncio.sleep(1.6)  # past the lease: the live holder keeps renewing
    assert (await store._claim(["q"], 5, 30)) [0] == []
    holder.proc.send_signal(signal.SIGKILL)
    holder.proc.wait()
    killed = time.monotonic()
    consumer = store.consume(["q"], prefetch=5, lease=30)
    got = [await asyncio.wait_for(anext(consumer), 5) for _ in range(5)]
    assert time.monotonic() - killed < 3.0  # a 1 s lease, plus one idle wait at most
    assert sorted(d.envelope.id for d in got) == sorted(held)
    assert all(d.attempt == 2 for d in got)
    for delivery in got:
        await delivery.ack()
    await consumer.close()
    await store.aclose()


def test_doorbell_wakes_a_consumer_in_another_process_promptly(
    url: str, children: list[Child]
) -> None:
    store = open_store(url)
    waiter = Child("wake", url, "5")
    children.append(waiter)
    assert waiter.line() == "ready"
    latencies = []
    for pause in (0.3, 0.15, 0.4, 0.05, 0.25):
        time.sleep(pause)  # the child is idle, sleeping on its doorbell socket
        store.publish([env(repr(time.time()).encode())])
        latencies.append(float(waiter.line()))
    assert waiter.rest() == []
    # Its idle wait is 60 s, so anything this quick came from the doorbell.
    assert max(latencies) < 0.5, latencies
    print(f"publish-to-wake across processes: median {statistics.median(latencies) * 1e3:.2f} ms")
    store.close()


def test_idle_consumer_does_not_spin(url: str, children: list[Child]) -> None:
    open_store(url).close()
    idle = Child("idle", url)
    children.append(idle)
    report = json.loads(idle.line())
    assert report["claims"] <= 5  # about one look a second (PullConsumer.max_idle)
    assert report["consumer_cpu"] < 0.1  # over 2 s
    assert report["wait_seconds"] >= 0.9
    assert report["wait_cpu"] < 0.05  # over 1 s


@pytest.mark.parametrize("how", ["sync", "async"])
def test_result_waiter_in_another_process_is_woken(
    url: str, children: list[Child], how: str
) -> None:
    store = open_store(url)
    task = str(uuid.uuid4())
    store.store(task, StoredResult(b"{}", "STARTED", 1, False), ttl=60)
    waiter = Child("result", url, task, how)
    children.append(waiter)
    assert waiter.line() == "ready"
    time.sleep(0.3)
    stored_at = time.time()
    store.store(task, StoredResult(b"42", "SUCCESS", 1, True), ttl=60)
    report = json.loads(waiter.line())
    assert report["state"] == "SUCCESS"
    assert report["at"] - stored_at < 0.5
    store.close()


def test_many_processes_can_create_a_new_database_at_once(tmp_path: Path) -> None:
    """Opening a fresh file switches it to WAL, which needs it alone; racing openers (a pool's
    children starting together) wait for each other instead of failing "database is locked"."""
    code = """
import asyncio, sys, time
from conveyor.brokers import Envelope, open_store
time.sleep(max(0.0, float(sys.argv[2]) - time.time()))
store = open_store(sys.argv[1])
for i in range(20):
    store.publish([Envelope(f"{sys.argv[3]}-{i}", "q", b"x")])
    asyncio.run(store._claim(["q"], 1, 30))
store.close()
"""
    for round_ in range(4):
        url = f"sqlite:///{tmp_path}/fresh-{round_}.db"
        start = str(time.time() + 1.0)  # all at once, after every interpreter has started
        procs = [subprocess.Popen([sys.executable, "-c", code, url, start, str(n)],
                                  stderr=subprocess.PIPE) for n in range(6)]
        errors = [p.communicate(timeout=60)[1].decode() for p in procs]
        assert [p.returncode for p in procs] == [0] * 6, errors
