"""The Redis store under faults, with real OS processes and real servers, no mocks.

Consumers run as child processes (``python -c`` calling :func:`child` from this module) and talk
back in lines on stdout. Tests that kill, restart or reconfigure a server start their own
``redis-server`` on a free port and end it by its PID; the shared server on 6379 is only used under
a private key prefix that is deleted afterwards.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import queue
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from conveyor.brokers import Envelope, StoredResult, open_store
from conveyor.brokers.base import CRASH_AFTER_CLAIM_ENV
from conveyor.errors import BrokerUnavailable, ConfigurationError, LeaseLost
from tests import children as harness
from tests.children import interrupt_twice, say
from tests.stores import REDIS_HOST, REDIS_PORT, drop_redis_prefix, redis_up, unavailable

pytestmark = [pytest.mark.redis, pytest.mark.slow, pytest.mark.timeout(60)]

ROOT = Path(__file__).resolve().parents[2]
CHILD = "import sys; from tests.integration.test_redis_faults import child; child(sys.argv[1:])"
PASSWORD = "s3cret-Pa55"


def env(body: bytes = b"x", queue_name: str = "q") -> Envelope:
    return Envelope(id=str(uuid.uuid4()), queue=queue_name, body=body)


# -- the children -----------------------------------------------------------------------------


def child(argv: list[str]) -> None:
    harness.run(MODES, argv)


async def zombie(url: str) -> None:
    """Take one delivery (1 s lease), record its start, then wait for ``go`` on stdin (the
    parent stops us meanwhile) and try to write a final result and ack like a late worker."""
    store = open_store(url)
    consumer = store.consume(["q"], prefetch=1, lease=1.0)
    delivery = await anext(consumer)
    task, attempt = delivery.envelope.id, delivery.attempt
    await store.astore(task, StoredResult(b"", "STARTED", attempt, False), 60)
    say("claimed", task, attempt)
    await asyncio.to_thread(sys.stdin.readline)
    say("stored", await store.astore(task, StoredResult(b"zombie", "SUCCESS", attempt, True), 60))
    try:
        await delivery.ack()
        say("acked")
    except LeaseLost:
        say("lease-lost")
    await store.aclose()


async def measure_idle(url: str) -> None:
    """CPU seconds and claim count of an idle consumer over 2 s."""
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
    say(json.dumps({"cpu": time.process_time() - cpu, "claims": claims - before}))
    await consumer.close()
    await asyncio.gather(waiting, return_exceptions=True)
    await store.aclose()


MODES: dict[str, Any] = {**harness.MODES, "zombie": zombie, "idle": measure_idle}


# -- the parent side --------------------------------------------------------------------------


class Child(harness.Child):
    code = CHILD


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class PrivateRedis:
    """A redis-server of this test alone, on a free port; stopped by its PID, never by name."""

    def __init__(self, workdir: Path, *args: str, config: Path | None = None) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            unavailable("redis-server binary")
        self.port = free_port()
        self.argv = [str(binary), *([str(config)] if config else []), "--port", str(self.port),
                     "--bind", "127.0.0.1", "--save", "", "--dir", str(workdir), *args]
        self.password = args[args.index("--requirepass") + 1] if "--requirepass" in args else None
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> PrivateRedis:
        self.proc = subprocess.Popen(self.argv, stdout=subprocess.DEVNULL)
        client = redis.Redis(port=self.port, password=self.password)
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                break
            except (redis.ConnectionError, redis.BusyLoadingError):
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.02)
        client.close()
        return self

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(10)
        self.proc = None


@pytest.fixture
def url() -> Iterator[str]:
    """A private prefix on the shared server, deleted afterwards."""
    if not redis_up():
        unavailable(f"Redis at {REDIS_HOST}:{REDIS_PORT}")
    prefix = f"faults-{uuid.uuid4().hex[:12]}"
    try:
        yield f"redis://{REDIS_HOST}:{REDIS_PORT}/0?prefix={prefix}"
    finally:
        drop_redis_prefix(prefix)


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[list[PrivateRedis]]:
    started: list[PrivateRedis] = []
    yield started
    for server in started:
        server.kill()


@pytest.fixture
def children() -> Iterator[list[Child]]:
    started: list[Child] = []
    yield started
    for one in started:
        one.kill()


# -- consumers dying, stopping, racing --------------------------------------------------------


def test_concurrent_consumer_processes_never_get_the_same_id(
    url: str, children: list[Child]
) -> None:
    store = open_store(url)
    sent = [env() for _ in range(2000)]
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
    assert len(received) == len(set(received)) == len(sent)
    assert set(received) == {e.id for e in sent}
    assert sum(1 for one in children if one.proc.returncode == 0) == 4
    stats = store.stats("q")
    assert (stats.ready, stats.in_flight, stats.delayed) == (0, 0, 0)
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
    assert (await store._claim(["q"], 5, 30))[0] == []
    holder.proc.send_signal(signal.SIGKILL)
    holder.proc.wait()
    killed = time.monotonic()
    consumer = store.consume(["q"], prefetch=5, lease=30)
    got = [await asyncio.wait_for(anext(consumer), 5) for _ in range(5)]
    assert time.monotonic() - killed < 2.5  # the rest of a 1 s lease, plus one wake-up
    assert sorted(d.envelope.id for d in got) == sorted(held)
    assert all(d.attempt == 2 for d in got)
    for delivery in got:
        await delivery.ack()
    await consumer.close()
    await store.aclose()


async def test_crash_right_after_claim_is_redelivered(url: str, children: list[Child]) -> None:
    store = open_store(url)
    sent = env()
    store.publish([sent])
    crasher = Child("drain", url, "5", "1.0", extra_env={CRASH_AFTER_CLAIM_ENV: "1"})
    children.append(crasher)
    assert crasher.line() == "ready"
    assert crasher.proc.wait(10) == -signal.SIGKILL  # between the claim and any bookkeeping
    assert store.stats("q").ready + store.stats("q").in_flight == 1
    consumer = store.consume(["q"], prefetch=1, lease=30)
    got = await asyncio.wait_for(anext(consumer), 4)
    assert (got.envelope.id, got.attempt) == (sent.id, 2)
    await got.ack()
    await consumer.close()
    await store.aclose()


async def test_stopped_consumer_past_its_lease_is_fenced_out(
    url: str, children: list[Child]
) -> None:
    store = open_store(url)
    sent = env()
    store.publish([sent])
    late = Child("zombie", url)
    children.append(late)
    assert late.line() == f"claimed {sent.id} 1"
    late.proc.send_signal(signal.SIGSTOP)
    consumer = store.consume(["q"], prefetch=1, lease=30)
    current = await asyncio.wait_for(anext(consumer), 4)  # after the 1 s lease ran out
    assert current.attempt == 2
    assert await store.astore(sent.id, StoredResult(b"", "STARTED", 2, False), 60)
    late.proc.send_signal(signal.SIGCONT)
    late.tell("go")
    assert late.line() == "stored False"  # its attempt-1 result is refused
    assert late.line() == "lease-lost"  # and so is its ack
    assert late.proc.wait(10) == 0
    assert await store.astore(sent.id, StoredResult(b"winner", "SUCCESS", 2, True), 60)
    assert not await store.astore(sent.id, StoredResult(b"again", "SUCCESS", 2, True), 60)
    await current.ack()
    assert store.get(sent.id) == StoredResult(b"winner", "SUCCESS", 2, True)
    stats = store.stats("q")
    assert (stats.ready, stats.in_flight) == (0, 0)
    await consumer.close()
    await store.aclose()


# -- wake-ups ---------------------------------------------------------------------------------


def test_idle_consumer_in_another_process_wakes_within_milliseconds(
    url: str, children: list[Child]
) -> None:
    store = open_store(url)
    samples = 60
    waiter = Child("wake", url, str(samples))
    children.append(waiter)
    assert waiter.line() == "ready"
    latencies = []
    for i in range(samples):
        time.sleep(0.01 + (i % 5) * 0.005)  # the child is idle, asleep on its subscription
        store.publish([env(repr(time.time()).encode())])
        latencies.append(float(waiter.line()))
    assert waiter.rest() == []
    p99 = statistics.quantiles(latencies, n=100)[98]
    print(f"publish-to-wake across processes: median {statistics.median(latencies) * 1e3:.2f} ms,"
          f" p99 {p99 * 1e3:.2f} ms")
    # Its idle wait is 60 s, so anything this quick came from the wake-up; the target is 2 ms
    # on an idle machine, the bound here leaves room for a loaded test runner.
    assert p99 < 0.05, latencies
    store.close()


def test_idle_consumer_does_not_spin(url: str, children: list[Child]) -> None:
    idle = Child("idle", url)
    children.append(idle)
    report = json.loads(idle.line())
    assert report["claims"] <= 5  # about one look a second (PullConsumer.max_idle)
    assert report["cpu"] < 0.1  # over 2 s


# -- the server dying -------------------------------------------------------------------------


def test_server_sigkilled_and_restarted_under_load_loses_no_acknowledged_publish(
    tmp_path: Path, servers: list[PrivateRedis], children: list[Child]
) -> None:
    server = PrivateRedis(tmp_path, "--appendonly", "yes", "--appendfsync", "always",
                          "--requirepass", PASSWORD).start()
    servers.append(server)
    url = f"redis://:{PASSWORD}@127.0.0.1:{server.port}/0?prefix=restart"
    store = open_store(url)
    consumer = Child("drain", url, "4", "2")
    children.append(consumer)
    assert consumer.line() == "ready"
    accepted: list[str] = []
    refusals: list[str] = []

    def produce(seconds: float) -> None:
        until = time.monotonic() + seconds
        while time.monotonic() < until:
            batch = [env() for _ in range(20)]
            try:
                store.publish(batch)
                accepted.extend(e.id for e in batch)
            except BrokerUnavailable as exc:
                refusals.append(str(exc))
            time.sleep(0.005)

    produce(1.0)
    server.kill(signal.SIGKILL)
    produce(0.5)  # every publish now fails, fast
    server.start()
    produce(1.0)
    assert refusals, "no publish was refused while the server was down"
    assert all(PASSWORD not in text and ":***@" in text for text in refusals)
    assert all(text.startswith("cannot reach redis://") for text in refusals)
    received: set[str] = set()
    deadline = time.monotonic() + 20
    while not set(accepted) <= received and time.monotonic() < deadline:
        with contextlib.suppress(queue.Empty):
            received.add(consumer.line(timeout=1))
    assert set(accepted) <= received, f"{len(set(accepted) - received)} acknowledged ids lost"
    assert consumer.proc.poll() is None  # the consumer rode out the outage by itself
    store.close()


async def test_restarted_server_without_scripts_is_used_at_once(
    tmp_path: Path, servers: list[PrivateRedis]
) -> None:
    """After a restart every pooled connection is dead and the script cache is empty: the first
    calls, sync and async, must still succeed (no spurious error, scripts reloaded)."""
    server = PrivateRedis(tmp_path, "--appendonly", "yes", "--appendfsync", "always").start()
    servers.append(server)
    store = open_store(f"redis://127.0.0.1:{server.port}/0?prefix=fresh")
    first, second = env(), env()
    store.publish([first])
    await store.apublish([second])
    assert store.stats("q").ready == 2
    server.kill(signal.SIGTERM)
    server.start()
    store.publish([env()])
    await store.apublish([env()])
    assert store.get("nothing") is None
    claims, _ = await store._claim(["q"], 10, 30)
    assert len(claims) == 4 and claims[0].envelope.id == first.id
    for claim in claims:
        await store._settle_ack(claim)
    await store.aclose()


def test_opening_a_down_server_names_it_without_the_password() -> None:
    port = free_port()
    with pytest.raises(BrokerUnavailable) as caught:
        open_store(f"redis://:{PASSWORD}@127.0.0.1:{port}/0")
    assert PASSWORD not in str(caught.value)
    assert str(caught.value).startswith(f"cannot reach redis://:***@127.0.0.1:{port}/0: ")


async def test_idle_consumer_waits_out_a_server_that_is_down(
    tmp_path: Path, servers: list[PrivateRedis]
) -> None:
    server = PrivateRedis(tmp_path, "--appendonly", "yes").start()
    servers.append(server)
    store = open_store(f"redis://127.0.0.1:{server.port}/0?prefix=down")
    consumer = store.consume(["q"], prefetch=1, lease=5)
    waiting = asyncio.ensure_future(anext(consumer))
    await asyncio.sleep(0.2)
    server.kill(signal.SIGKILL)
    await asyncio.sleep(1.5)  # claims and waits fail meanwhile; the consumer must not die
    assert not waiting.done()
    server.start()
    sent = env()
    store.publish([sent])
    got = await asyncio.wait_for(waiting, 5)
    assert got.envelope.id == sent.id
    await got.ack()
    await consumer.close()
    await store.aclose()


# -- configuration ----------------------------------------------------------------------------


def test_server_that_may_evict_queue_keys_is_refused(
    tmp_path: Path, servers: list[PrivateRedis], caplog: pytest.LogCaptureFixture
) -> None:
    server = PrivateRedis(tmp_path, "--maxmemory-policy", "allkeys-lru").start()
    servers.append(server)
    url = f"redis://127.0.0.1:{server.port}/0"
    with pytest.raises(ConfigurationError, match="allkeys-lru"):
        open_store(url)
    admin = redis.Redis(port=server.port)
    admin.config_set("maxmemory-policy", "volatile-lru")
    open_store(url).close()
    # A user that may not read the configuration: the check is skipped with a warning.
    admin.config_set("maxmemory-policy", "allkeys-lru")
    admin.acl_setuser("app", enabled=True, passwords=["+app-pw"], keys=["*"], channels=["*"],
                      commands=["+@all", "-config"])
    admin.close()
    with caplog.at_level(logging.WARNING, logger="conveyor.brokers.redis"):
        open_store(f"redis://app:app-pw@127.0.0.1:{server.port}/0").close()
    assert "maxmemory-policy" in caplog.text
    assert "app-pw" not in caplog.text


def self_signed(tmp_path: Path) -> tuple[Path, Path]:
    if shutil.which("openssl") is None:
        unavailable("openssl")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=localhost", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True)
    return cert, key


async def test_tls_and_sentinel_urls_reach_the_server(
    tmp_path: Path, servers: list[PrivateRedis]
) -> None:
    cert, key = self_signed(tmp_path)
    tls_port = free_port()
    tls = PrivateRedis(tmp_path, "--tls-port", str(tls_port), "--tls-cert-file", str(cert),
                       "--tls-key-file", str(key), "--tls-auth-clients", "no")
    servers.append(tls.start())
    master = PrivateRedis(tmp_path, "--requirepass", PASSWORD).start()
    servers.append(master)
    conf = tmp_path / "sentinel.conf"
    conf.write_text(f"sentinel monitor main 127.0.0.1 {master.port} 1\n"
                    f"sentinel auth-pass main {PASSWORD}\n")
    sentinel = PrivateRedis(tmp_path, "--sentinel", config=conf)
    servers.append(sentinel.start())
    urls = [
        f"rediss://127.0.0.1:{tls_port}/0?prefix=tls&ssl_ca_certs={cert}&ssl_check_hostname=false",
        f"redis+sentinel://:{PASSWORD}@127.0.0.1:{sentinel.port},127.0.0.1:1/main/0?prefix=sent",
    ]
    for url in urls:
        store = open_store(url)
        assert PASSWORD not in store.url and PASSWORD not in repr(store)
        sent = env(b"over " + url.split(":")[0].encode())
        await store.apublish([sent])
        consumer = store.consume(["q"], prefetch=1, lease=30)
        got = await asyncio.wait_for(anext(consumer), 5)
        assert got.envelope == sent
        await got.ack()
        await consumer.close()
        await store.aclose()


def test_worker_keeps_consuming_after_redis_restarts(
    tmp_path: Path, servers: list[PrivateRedis]
) -> None:
    """A real worker process rides out a Redis crash and restart without being restarted."""
    from conveyor import Conveyor

    server = PrivateRedis(tmp_path, "--appendonly", "yes", "--appendfsync", "always").start()
    servers.append(server)
    url = f"redis://127.0.0.1:{server.port}/0?prefix=worker-restart"
    trace = tmp_path / "trace"
    trace.mkdir()
    worker = subprocess.Popen(
        [sys.executable, "-m", "conveyor", "worker", "-A", "tests.integration.taskapp",
         "--pool", "thread", "-c", "1", "-l", "error"], cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT), "CONVEYOR_BROKER_URL": url,
             "CONVEYOR_TEST_DIR": str(trace)}, start_new_session=True)
    app = Conveyor("itest", broker=url)
    try:
        assert app.send_task("tests.integration.taskapp.add", [1, 2]).get(timeout=20) == 3
        server.kill(signal.SIGKILL)
        time.sleep(1.0)  # the worker sees the outage
        server.start()
        app.close()
        assert app.send_task("tests.integration.taskapp.add", [2, 3]).get(timeout=30) == 5
        assert worker.poll() is None
    finally:
        app.close()
        interrupt_twice([worker], 15)


async def test_wake_up_reader_survives_a_subscribe_made_while_the_server_is_down(
    tmp_path: Path, servers: list[PrivateRedis]
) -> None:
    """Waits that subscribe while Redis is down or coming back must never show the hub's reader
    a pub/sub that is not connected: the reader would die on it (RuntimeError)."""
    server = PrivateRedis(tmp_path, "--appendonly", "yes").start()
    servers.append(server)
    store = open_store(f"redis://127.0.0.1:{server.port}/0?prefix=hub")
    await store._wait(["q"], 0.05)  # subscribed, the reader runs
    hub = store._side().hub
    server.kill(signal.SIGKILL)
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:  # the reader backs off; waits subscribe meanwhile
        with contextlib.suppress(BrokerUnavailable):
            await store._wait(["q", "other"], 0.05)
        await asyncio.sleep(0.05)
    assert not _died(hub._reader)
    server.start()
    await store._wait(["q"], 0.05)  # subscribes while the reader may be reconnecting too
    await asyncio.sleep(0.5)
    assert not _died(hub._reader)
    waiting = asyncio.ensure_future(store._wait(["q"], 30))
    await asyncio.sleep(0.3)
    store.publish([env()])
    await asyncio.wait_for(waiting, 5)  # woken by the announcement, not the 30 s timeout
    await store.aclose()


def _died(task: asyncio.Task[None] | None) -> BaseException | None:
    if task is None or not task.done() or task.cancelled():
        return None
    return task.exception()
