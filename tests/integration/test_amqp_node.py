"""RabbitMQ restarts and TLS, on a private node (own name, ports, data and config; the shared
server is never touched): one node for the module, started from the installed rabbitmq-server."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from conveyor import Conveyor
from conveyor.brokers import Envelope, open_broker, queue_admin
from conveyor.errors import BrokerError
from tests.integration.conftest import ROOT, trace_lines, wait_for
from tests.rabbit_node import PrivateNode
from tests.stores import store_url

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]


def make_cert(where: Path) -> dict[str, Path]:
    """A self-signed certificate for localhost and 127.0.0.1, made with openssl."""
    cert, key = where / "cert.pem", where / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-subj", "/CN=localhost", "-addext",
                    "subjectAltName=DNS:localhost,IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    return {"ca": cert, "cert": cert, "key": key}


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrivateNode]:
    base = tmp_path_factory.mktemp("rabbit")
    private = PrivateNode(base, tls=make_cert(base))
    private.start()
    try:
        yield private
    finally:
        private.stop()


def test_amqps_with_a_self_signed_certificate(node: PrivateNode, tmp_path: Path) -> None:
    ca = node.base / "cert.pem"
    url = f"amqps://guest:guest@127.0.0.1:{node.tls_port}//?ca_certs={ca}"
    broker = open_broker(url)

    async def round_trip() -> bytes:
        await broker.apublish([Envelope(str(uuid.uuid4()), "tls", b"secret")])
        consumer = broker.consume(["tls"], prefetch=1, lease=30)
        got = await asyncio.wait_for(anext(consumer), 30)
        await got.ack()
        await consumer.close()
        return got.envelope.body

    try:
        assert asyncio.run(round_trip()) == b"secret"
        wrong = open_broker(f"amqps://guest:guest@127.0.0.1:{node.tls_port}//")
        with pytest.raises(BrokerError):  # the self-signed certificate is not trusted
            wrong.publish([Envelope(str(uuid.uuid4()), "tls", b"x")])
        wrong.close()
    finally:
        broker.close()


class Producer(threading.Thread):
    """Sends one task every few milliseconds; counts what RabbitMQ confirmed and what raised."""

    def __init__(self, app: Conveyor) -> None:
        super().__init__(daemon=True)
        self.app = app
        self.confirmed: list[str] = []
        self.raised: list[float] = []
        self.stop = threading.Event()

    def run(self) -> None:
        from tests.integration import amqp_app

        n = 0
        deadline = time.monotonic() + 120
        while not self.stop.is_set() and time.monotonic() < deadline:
            tag = f"p{n}"
            n += 1
            try:
                amqp_app.record.delay(tag, 0.05)
            except BrokerError:
                self.raised.append(time.monotonic())
                time.sleep(0.2)
                continue
            self.confirmed.append(tag)
            time.sleep(0.01)


def test_restart_under_load_runs_every_confirmed_publish(node: PrivateNode,
                                                         tmp_path: Path) -> None:
    trace = tmp_path / "trace"
    trace.mkdir()
    with store_url("redis", tmp_path) as backend:
        env = {**os.environ, "CONVEYOR_BROKER_URL": node.url,
               "CONVEYOR_RESULT_BACKEND": backend, "CONVEYOR_TEST_DIR": str(trace),
               "PYTHONPATH": str(ROOT)}
        os.environ["CONVEYOR_TEST_DIR"] = str(trace)
        from tests.integration import amqp_app

        amqp_app.app.broker_url, amqp_app.app.backend_url = node.url, backend
        worker = subprocess.Popen(
            [sys.executable, "-m", "conveyor", "worker", "-A", "tests.integration.amqp_app",
             "-l", "error", "--pool", "thread", "-c", "4"], env=env, cwd=ROOT,
            start_new_session=True)
        producer = Producer(amqp_app.app)
        try:
            producer.start()
            wait_for(lambda: len(trace_lines(env, "done")) >= 20, timeout=60)
            delayed_at = time.time()  # a delay level holds this one across the restart
            amqp_app.record.apply_async(("delayed",), countdown=4)
            node.stop()
            wait_for(lambda: len(producer.raised) >= 3, timeout=30)
            down_confirmed = len(producer.confirmed)
            node.start()
            wait_for(lambda: len(producer.confirmed) > down_confirmed + 20, timeout=90)
            producer.stop.set()
            producer.join(30)
            expected = {*producer.confirmed, "delayed"}
            wait_for(lambda: expected <= {ln.split()[0] for ln in trace_lines(env, "done")},
                     timeout=30, every=0.5)
            resumed = worker.poll() is None  # the same process, never restarted
        finally:
            producer.stop.set()
            worker.send_signal(signal.SIGTERM)
            try:
                worker.wait(30)
            except subprocess.TimeoutExpired:
                worker.kill()
            amqp_app.app.close()
    assert resumed
    ran = [float(ln.split()[2]) for ln in trace_lines(env, "done") if ln.startswith("delayed ")]
    assert ran and min(ran) >= delayed_at + 4  # after the restart, and never early
    assert producer.raised  # producers raise while RabbitMQ is down...
    assert len(producer.confirmed) > down_confirmed  # ...and succeed once it is back


def test_a_late_ack_costs_a_redelivery_not_the_task(tmp_path: Path) -> None:
    """A node whose consumer timeout (2 s, checked every 0.5 s) is shorter than a first run
    of 6 s: RabbitMQ closes the channel and hands the message out again, but the first run
    still holds the id's claim, so the copy waits; once the first run stored SUCCESS the copy
    is acknowledged without running. The worker warned at start-up."""
    base = tmp_path / "rabbit"
    base.mkdir()
    node = PrivateNode(base, conf=("consumer_timeout = 2000",),
                       advanced="[{rabbit, [{channel_tick_interval, 500}]}].")
    node.start()
    trace = tmp_path / "trace"
    trace.mkdir()
    url = node.url + "?consumer_timeout=2"
    try:
        with store_url("redis", tmp_path) as backend:
            env = {**os.environ, "CONVEYOR_BROKER_URL": url, "CONVEYOR_RESULT_BACKEND": backend,
                   "CONVEYOR_TEST_DIR": str(trace), "PYTHONPATH": str(ROOT)}
            os.environ["CONVEYOR_TEST_DIR"] = str(trace)
            from tests.integration import amqp_app

            amqp_app.app.broker_url, amqp_app.app.backend_url = url, backend
            log = open(tmp_path / "worker.log", "wb")  # noqa: SIM115 - closed below
            worker = subprocess.Popen(
                [sys.executable, "-m", "conveyor", "worker", "-A", "tests.integration.amqp_app",
                 "-l", "warning", "--pool", "thread", "-c", "2"], env=env, cwd=ROOT,
                stdout=log, stderr=log, start_new_session=True)
            try:
                result = amqp_app.slow_once.delay("slow", 6.0)
                assert result.get(timeout=25) == "slow"
                wait_for(lambda: _drained(amqp_app.app), timeout=30)  # the copy was settled
                started = [ln for ln in trace_lines(env, "started") if ln.startswith("slow ")]
                done = [ln for ln in trace_lines(env, "done") if ln.startswith("slow ")]
            finally:
                worker.send_signal(signal.SIGTERM)
                try:
                    worker.wait(30)
                except subprocess.TimeoutExpired:
                    worker.kill()
                log.close()
                amqp_app.app.close()
    finally:
        node.stop()
    output = (tmp_path / "worker.log").read_text()
    assert "task amqptest.long: time_limit 120s is longer than RabbitMQ's consumer timeout" \
        in output
    assert "task amqptest.slow_once" not in output  # no time limit: no warning
    assert len(started) == 1  # RabbitMQ handed it out again; the copy was not run
    assert len(done) == 1
    assert "lease of" in output  # the first run's ack came too late: its channel had closed


def _drained(app: Conveyor) -> bool:
    """Nothing of the default queue is ready, delayed or held, seen twice (counts are
    snapshots)."""
    def empty() -> bool:
        stats = queue_admin(app.broker).stats("default")
        return stats.ready + stats.delayed + stats.in_flight == 0
    return empty() and (time.sleep(0.5) or empty())
