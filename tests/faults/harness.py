"""The scenario harness: the brokers under test, worker fleets, producers and the figures.

A scenario gets a :class:`Target` (the broker: a private key prefix or file on a shared server,
or a server of its own when the scenario kills it), starts a :class:`Fleet` of real worker
processes of :mod:`tests.faults.faultapp`, injects its fault, waits for the ledger, and checks
it (:func:`tests.faults.ledger.check`). Each scenario's figures are printed and, with
``FAULTS_RESULTS`` set, appended to that file as one JSON line (docs/reliability.md is written
from them).
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from conveyor import Conveyor
from conveyor.brokers.amqp import AmqpBroker
from tests.children import interrupt_twice
from tests.faults import faultapp, ledger
from tests.rabbit_node import PrivateNode, port_open
from tests.stores import store_url

ROOT = Path(__file__).resolve().parents[2]

#: Every broker of the matrix; a broker whose module is not there yet is skipped, saying so.
BROKERS = ["sqlite", "redis", "amqp"]
MODULES = {"sqlite": "conveyor.brokers.sqlite", "redis": "conveyor.brokers.redis",
           "amqp": "conveyor.brokers.amqp"}
#: Brokers that carry messages only: their results go to a private prefix on the shared Redis.
BROKER_ONLY = {"amqp"}


#: The long versions: ``make faults`` (FAULTS_LONG=1) runs them, ``make test`` the short ones.
LONG = bool(os.environ.get("FAULTS_LONG"))


def need_module(kind: str) -> None:
    if importlib.util.find_spec(MODULES[kind]) is None:
        pytest.skip(f"{MODULES[kind]} does not exist yet: the {kind} rows of the matrix wait"
                    " for that broker")


@dataclass
class Target:
    """The broker under test: its kind, URL, its own server when the scenario kills it, and
    for a broker-only store (RabbitMQ) the result backend beside it."""

    kind: str
    url: str
    server: Any = None
    workdir: Path | None = None
    results: str | None = None

    @property
    def backend(self) -> str:
        """The result backend's URL: the broker's own store unless it is broker-only."""
        return self.results or self.url


@contextlib.contextmanager
def with_results(target: Target, tmp_path: Path) -> Iterator[Target]:
    """``target``, given a result backend of its own (a private Redis prefix) when its broker
    keeps no results; the prefix is removed afterwards."""
    if target.kind not in BROKER_ONLY:
        yield target
        return
    with store_url("redis", tmp_path) as results:
        target.results = results
        yield target


@contextlib.contextmanager
def shared_target(kind: str, tmp_path: Path) -> Iterator[Target]:
    """A private prefix, file or vhost on the shared server, removed afterwards."""
    need_module(kind)
    with store_url(kind, tmp_path) as url, with_results(Target(kind, url), tmp_path) as found:
        yield found


@contextlib.contextmanager
def own_target(kind: str, tmp_path: Path, *, small: bool = False) -> Iterator[Target]:
    """A broker of this test alone, which the scenario may kill and restart: a redis-server
    with appendonly (fsync at every write) on a free port, a SQLite file (with ``small``, on a
    small filesystem of its own)."""
    need_module(kind)
    if kind == "sqlite" and small:
        disk = small_disk(tmp_path / "disk")
        try:
            yield Target(kind, f"sqlite:///{disk}/own.db", workdir=disk)
        finally:
            subprocess.run(["umount", "-l", str(disk)], check=False, capture_output=True)
    elif kind == "sqlite":
        yield Target(kind, f"sqlite:///{tmp_path}/own.db", workdir=tmp_path)
    elif kind == "amqp":
        with own_rabbit(tmp_path) as found:
            yield found
    elif kind == "redis":
        from tests.integration.test_redis_faults import PrivateRedis

        workdir = tmp_path / "redis"
        workdir.mkdir()
        server = PrivateRedis(workdir, "--appendonly", "yes", "--appendfsync", "always").start()
        try:
            yield Target(kind, f"redis://127.0.0.1:{server.port}/0?prefix=faults", server,
                         workdir)
        finally:
            server.kill()
    else:
        raise ValueError(kind)


#: The private RabbitMQ nodes of running scenarios, by AMQP port.
NODES: dict[int, OwnRabbit] = {}


class OwnRabbit(PrivateNode):
    """A private RabbitMQ node the scenario kills (SIGKILL of its process group, as a crash)
    and starts again on the same ports and data directory."""

    def kill(self, sig: int = signal.SIGKILL) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        proc.wait(60)
        wait_for(lambda: not port_open(self.port), 30, "the killed node's port still open")

    def ctl(self, *args: str) -> str:
        """``rabbitmqctl`` against this node, with its own Erlang cookie (from its HOME; the CLI
        itself runs with the rabbitmq user's)."""
        cookie = (self.base / ".erlang.cookie").read_text().strip()
        done = subprocess.run(["rabbitmqctl", "-q", "-n", self.name, "--erlang-cookie", cookie,
                               *args], capture_output=True, text=True, timeout=60, check=True)
        return done.stdout


@contextlib.contextmanager
def own_rabbit(tmp_path: Path) -> Iterator[Target]:
    """A RabbitMQ node of this test alone (own node name, ports, data directory); results in
    a private prefix on the shared Redis."""
    need_module("amqp")
    node = OwnRabbit(tmp_path / "rabbit")
    node.start()
    NODES[node.port] = node
    try:
        with with_results(Target("amqp", f"{node.url}?prefix=faults.", node, node.base),
                          tmp_path) as found:
            yield found
    finally:
        NODES.pop(node.port, None)
        node.stop()


def small_disk(where: Path, size: str = "24m") -> Path:
    """A small tmpfs of its own at ``where`` (so a scenario can fill it); skipped when this
    process may not mount one."""
    where.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)],
                          capture_output=True, text=True, check=False)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {done.stderr.strip()}")
    return where


def wait_for(check: Callable[[], Any], timeout: float, what: str, every: float = 0.1) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout:.0f}s")
        time.sleep(every)


class Fleet:
    """Worker processes of the fault app on one target; none outlives the test."""

    def __init__(self, target: Target, tmp_path: Path) -> None:
        self.target = target
        self.ledger = ledger.create(tmp_path / "ledger.db")
        self.logs = tmp_path / "logs"
        self.logs.mkdir(exist_ok=True)
        self.faults = ledger.Faults()
        self.procs: list[subprocess.Popen[bytes]] = []
        self.env = {**os.environ, "PYTHONPATH": str(ROOT), "CONVEYOR_BROKER_URL": target.url,
                    "CONVEYOR_RESULT_BACKEND": target.backend,
                    "FAULTS_LEDGER": str(self.ledger), "CONVEYOR_EVENTS": "false"}

    def start(self, *args: str, pool: str = "thread", concurrency: int = 4, lease: float = 2.0,
              env: dict[str, str] | None = None,
              prefix: Sequence[str] = ()) -> subprocess.Popen[bytes]:
        argv = [*prefix, sys.executable, "-m", "conveyor", "worker", "-A",
                "tests.faults.faultapp", "--pool", pool, "-c", str(concurrency),
                "--lease", str(lease), "-l", "warning", *args]
        log = open(self.logs / f"worker-{len(self.procs)}.log", "ab")  # noqa: SIM115
        proc = subprocess.Popen(argv, cwd=ROOT, env={**self.env, **(env or {})},
                                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        self.procs.append(proc)
        return proc

    def alive(self) -> list[subprocess.Popen[bytes]]:
        return [p for p in self.procs if p.poll() is None]

    def kill(self, proc: subprocess.Popen[bytes], sig: int = signal.SIGKILL) -> None:
        """SIGKILL (or SIGSTOP) a worker and every process of its group, recording when."""
        for pid in [proc.pid, *children(proc.pid)]:
            self.faults.kill(pid)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        if sig == signal.SIGKILL:
            proc.wait()

    def stop_all(self) -> None:
        interrupt_twice(self.procs, 15)

    def wait_ended(self, ids: set[str], timeout: float) -> float:
        """Wait until every id has an end row; returns the seconds it took."""
        started = time.monotonic()
        try:
            wait_for(lambda: ids <= ledger.ended_ids(self.ledger), timeout, "the tasks")
        except AssertionError:  # count them now, not when the wait began
            left = len(ids - ledger.ended_ids(self.ledger))
            raise AssertionError(f"{left} of {len(ids)} tasks never ended: not within"
                                 f" {timeout:.0f}s") from None
        return time.monotonic() - started

    def log_tail(self) -> str:
        return "\n".join(p.read_text()[-2000:] for p in sorted(self.logs.iterdir()))


def children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as fh:
            return [int(p) for p in fh.read().split()]
    except OSError:
        return []


def bind_app(target: Target) -> Conveyor:
    """The fault app in this (producer) process, bound to the target's broker and backend."""
    faultapp.app.close()
    faultapp.app.broker_url, faultapp.app.backend_url = target.url, target.backend
    return faultapp.app


def durations(count: int, low: float, high: float, seed: int = 14) -> list[float]:
    rng = random.Random(seed)
    return [round(rng.uniform(low, high), 3) for _ in range(count)]


def enqueue(count: int, low: float, high: float, chunk: int = 50) -> list[str]:
    """Publish ``count`` work tasks (in bulk chunks); the ids of those whose publish returned."""
    ids: list[str] = []
    spans = durations(count, low, high)
    for start in range(0, count, chunk):
        sent = faultapp.app.send_many([faultapp.work.s(s) for s in spans[start:start + chunk]])
        ids += [r.id for r in sent]
    return ids


def settled(app: Conveyor, queue: str = "default") -> bool:
    stats = app.broker.stats(queue)  # type: ignore[attr-defined]
    held = stats.in_flight if not isinstance(app.broker, AmqpBroker) else in_flight(app, queue)
    return (stats.ready, held, stats.delayed) == (0, 0, 0)


def in_flight(app: Conveyor, queue: str = "default") -> int:
    """Messages of ``queue`` handed out and not settled, by any process. RabbitMQ tells that
    only through its management tools (its stats count what this process holds):
    ``rabbitmqctl list_queues messages_unacknowledged``, on the shared or the test's own node."""
    broker = app.broker
    if not isinstance(broker, AmqpBroker):
        return int(broker.stats(queue).in_flight)  # type: ignore[attr-defined]
    options = broker.options
    args = ("list_queues", "-p", options.vhost, "name", "messages_unacknowledged",
            "--no-table-headers")
    node = NODES.get(options.port)
    out = node.ctl(*args) if node is not None else subprocess.run(
        ["rabbitmqctl", "-q", *args], capture_output=True, text=True, timeout=60,
        check=True).stdout
    counts = dict(line.split()[:2] for line in out.splitlines() if len(line.split()) >= 2)
    return int(counts.get(options.prefix + queue, 0))


@dataclass
class Figures:
    """What one scenario on one broker observed, as reported in docs/reliability.md."""

    scenario: str
    broker: str
    long: bool = LONG
    values: dict[str, Any] = field(default_factory=dict)

    def add(self, **values: Any) -> None:
        self.values.update(values)

    def publish(self) -> None:
        line = {"scenario": self.scenario, "broker": self.broker, "long": self.long,
                **self.values}
        print("FAULTS", json.dumps(line))
        out = os.environ.get("FAULTS_RESULTS")
        if out:
            with open(out, "a") as fh:
                fh.write(json.dumps(line) + "\n")
