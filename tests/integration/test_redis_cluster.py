"""The Redis store on a real Redis Cluster (three masters, one replica each) started from the
installed ``redis-server``: queues spread over the masters, worker processes consume several
queues, and a master killed with SIGKILL loses no enqueue confirmed with ``WAIT``.

The session cluster (tests/redis_servers.py) serves the tests that leave it whole; the failover
test starts a cluster of its own.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from conveyor import Conveyor
from conveyor.brokers import Envelope, open_store
from conveyor.brokers import redis_scripts as lua
from conveyor.errors import BrokerError, BrokerUnavailable, ConfigurationError, NotReplicated
from tests.integration.conftest import wait_for
from tests.redis_servers import Cluster, drop_cluster_prefix, first_success, session_cluster

pytestmark = [pytest.mark.redis, pytest.mark.slow, pytest.mark.timeout(180)]


@pytest.fixture
def stores() -> Iterator[tuple[str, str]]:
    """The worker fixtures of this package, on a private prefix of the session cluster (one
    URL for broker and results)."""
    cluster = session_cluster()
    prefix = f"itest-{uuid.uuid4().hex[:12]}"
    url = f"{cluster.url}?prefix={prefix}"
    try:
        yield url, url
    finally:
        drop_cluster_prefix(cluster, prefix)


def queue_per_master(cluster: Cluster, prefix: str) -> dict[int, str]:
    """A queue name for each master (by port), found by asking the cluster for the slots of
    the queues' hash tags."""
    found: dict[int, str] = {}
    for i in range(200):
        name = f"q{i}"
        node = cluster.master_of(lua.queue_keys(prefix, name)["body"])
        found.setdefault(node.port, name)
        if len(found) == len(cluster.masters()):
            return found
    raise AssertionError(f"no queue name found for every master: {found}")


def test_queues_land_on_different_masters(broker_url: str) -> None:
    cluster = session_cluster()
    store = open_store(broker_url)
    try:
        queues = queue_per_master(cluster, store.prefix)
        assert len(queues) == 3
        store.publish([Envelope(id=f"m-{q}", queue=q, body=b"x") for q in queues.values()])
        for port, queue in queues.items():
            node = next(n for n in cluster.nodes if n.port == port)
            keys = lua.queue_keys(store.prefix, queue)
            with node.client() as direct:  # the master itself holds them, unredirected
                assert direct.hget(keys["body"], f"m-{queue}") == b"x"
                assert direct.zcard(keys["ready"]) == 1
        assert sorted(store.queues()) == sorted(queues.values())
    finally:
        store.close()


def test_workers_consume_several_queues_across_masters(app: Conveyor, workers: Any,
                                                       broker_url: str) -> None:
    from tests.integration import taskapp

    cluster = session_cluster()
    queues = list(queue_per_master(cluster, broker_url.rpartition("prefix=")[2]).values())
    for _ in range(2):
        workers.start("-Q", ",".join(queues), "-c", "2", "--pool", "thread")
    sent = [taskapp.add.apply_async((i, 1000), queue=queues[i % len(queues)])
            for i in range(30)]
    assert [r.get(timeout=60) for r in sent] == [i + 1000 for i in range(30)]
    store = app.backend
    assert all(store.stats(q).ready == 0 for q in queues)  # type: ignore[attr-defined]


def test_cluster_url_errors_are_clear_and_masked() -> None:
    cluster = session_cluster()
    with pytest.raises(ConfigurationError, match="unknown options"):
        open_store(f"{cluster.url}?bogus=1")
    with pytest.raises(ConfigurationError, match="database 0"):
        open_store(cluster.url.replace("redis+cluster://", "redis+cluster://u:pw@") + "/3")
    with pytest.raises(BrokerUnavailable) as caught:
        open_store("redis+cluster://user:s3cret-Pa55@127.0.0.1:1,127.0.0.1:2")
    assert "s3cret" not in str(caught.value) and "***" in str(caught.value)
    store = open_store(f"redis://{cluster.url.split('//')[1].split(',')[0]}?cluster=true")
    try:
        assert "cluster" in store.url and store.get("unknown") is None
    finally:
        store.close()


# -- failover ---------------------------------------------------------------------------------

class Producer(threading.Thread):
    """Publishes one message per call with WAIT-backed durability until told to stop; keeps
    the ids whose publish returned (confirmed) and the errors of the others."""

    def __init__(self, url: str, queue: str) -> None:
        super().__init__(daemon=True)
        self.store = open_store(url)
        self.queue = queue
        self.confirmed: list[str] = []
        self.errors: list[tuple[float, BaseException]] = []
        self.stop = threading.Event()

    def run(self) -> None:
        n = 0
        while not self.stop.is_set():
            n += 1
            msg_id = f"m{n}"
            try:
                self.store.publish([Envelope(id=msg_id, queue=self.queue, body=b"x")])
                self.confirmed.append(msg_id)
            except BrokerError as exc:
                self.errors.append((time.monotonic(), exc))
                time.sleep(0.05)


async def drain(url: str, queue: str, want: set[str], timeout: float = 60.0) -> set[str]:
    """Consume ``queue`` until every id of ``want`` came (or ``timeout``); the ids seen."""
    store = open_store(url)
    seen: set[str] = set()
    consumer = store.consume([queue], prefetch=100, lease=30)
    try:
        async with asyncio.timeout(timeout):
            while not want <= seen:
                delivery = await anext(consumer)
                seen.add(delivery.envelope.id)
                await delivery.ack()
    except TimeoutError:
        pass
    finally:
        await consumer.close()
        await store.aclose()
    return seen


def queues_on(cluster: Cluster, prefix: str, port: int, count: int) -> list[str]:
    """``count`` queue names whose slots the master on ``port`` serves."""
    names = [f"q{i}" for i in range(500)]
    found = [q for q in names
             if cluster.master_of(lua.queue_keys(prefix, q)["body"]).port == port]
    assert len(found) >= count
    return found[:count]


FAILOVER_PREFIX = "failover"


@pytest.fixture
def failover(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Cluster, Any]]:
    """A cluster of this test alone, the test app pointed at it (default durability), and
    worker processes of tests/integration/taskapp.py on it, stopped before the cluster."""
    from tests.integration import taskapp
    from tests.integration.conftest import ROOT, Workers

    with Cluster() as cluster:
        url = f"{cluster.url}?prefix={FAILOVER_PREFIX}"
        trace = tmp_path / "trace"
        trace.mkdir()
        env = {**os.environ, "CONVEYOR_BROKER_URL": url, "CONVEYOR_TEST_DIR": str(trace),
               "PYTHONPATH": str(ROOT)}
        for key in ("CONVEYOR_BROKER_URL", "CONVEYOR_TEST_DIR"):
            monkeypatch.setenv(key, env[key])
        monkeypatch.setattr(taskapp.app, "broker_url", url)
        monkeypatch.setattr(taskapp.app, "backend_url", url)
        workers = Workers(env)
        try:
            yield cluster, workers
        finally:
            workers.stop_all()
            taskapp.app.close()


def test_master_failover_loses_no_enqueue_confirmed_with_wait(
        failover: tuple[Cluster, Any]) -> None:
    """Queue ``held`` (not consumed until the end) gets WAIT-confirmed enqueues before, during
    and after the failover of its master; a worker process consumes ``work`` on the same
    master (default durability) and follows the promotion."""
    from tests.integration import taskapp

    cluster, workers = failover
    master = next(iter(cluster.masters().values()))
    held, work = queues_on(cluster, FAILOVER_PREFIX, master.port, 2)
    durable = f"{cluster.url}?prefix={FAILOVER_PREFIX}&wait_replicas=1&wait_timeout_ms=500"
    worker = workers.start("-Q", work, "-c", "2", "--pool", "thread", lease=5)
    wait_for(lambda: asyncio.run(taskapp.app.backend.heartbeats()),  # type: ignore[attr-defined]
             timeout=60, every=0.2)
    assert [taskapp.add.apply_async((i, 1), queue=work).get(timeout=60) for i in range(3)] == [
        1, 2, 3]
    producer = Producer(durable, held)
    producer.start()
    wait_for(lambda: len(producer.confirmed) >= 200, timeout=60)
    before_kill = len(producer.confirmed)
    killed_at = time.monotonic()
    master.kill()
    sent, refused = first_success(lambda: taskapp.add.apply_async((7, 1), queue=work),
                                  killed_at + 60)
    accepted_after = time.monotonic() - killed_at
    assert sent.get(timeout=60) == 8
    ran_after = time.monotonic() - killed_at
    # The promoted replica has no replica of its own: WAIT cannot be satisfied, and says so.
    wait_for(lambda: any(isinstance(e, NotReplicated) and t > killed_at
                         for t, e in producer.errors), timeout=60)
    unreplicated = len(producer.confirmed)
    time.sleep(1.0)  # a second of refused confirmations (no replica: nothing may confirm)
    assert len(producer.confirmed) == unreplicated, "confirmed without a replica"
    master.start()  # back as a replica of the promoted master: WAIT is satisfied again
    rejoined = len(producer.confirmed)
    wait_for(lambda: len(producer.confirmed) >= rejoined + 50, timeout=60)
    producer.stop.set()
    producer.join(30)
    producer.store.close()
    confirmed = set(producer.confirmed)
    lost = confirmed - asyncio.run(drain(durable, held, confirmed))
    assert worker.poll() is None, "the worker exited during the failover"
    print(f"\ncluster failover: {before_kill} WAIT-confirmed enqueues before the kill,"
          f" {len(confirmed)} in all, {len(lost)} lost; a task enqueue was accepted"
          f" {accepted_after:.1f} s after the kill ({refused} refused before) and ran by"
          f" {ran_after:.1f} s")
    assert not lost, f"{len(lost)} confirmed enqueues lost: {sorted(lost)[:10]}"
    assert any("replicas" in str(e) for _, e in producer.errors)
