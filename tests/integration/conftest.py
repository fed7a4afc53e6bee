"""Integration fixtures: a private store per test and real worker processes started on it."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from conveyor import Conveyor
from tests.children import interrupt_twice
from tests.stores import PAIRS, store_urls

ROOT = Path(__file__).resolve().parents[2]
BROKERS = ["sqlite", "redis"]
#: BROKERS and RabbitMQ with results in Redis: ``@pytest.mark.parametrize("stores", WITH_AMQP,
#: indirect=True)`` on the cases that must hold on RabbitMQ too.
WITH_AMQP = [*BROKERS, *PAIRS]


@pytest.fixture(params=BROKERS)
def stores(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, str]]:
    """This test's private ``(broker_url, backend_url)``: one URL twice, or amqp + redis."""
    with store_urls(request.param, tmp_path) as urls:
        yield urls


@pytest.fixture
def broker_url(stores: tuple[str, str]) -> str:
    return stores[0]


@pytest.fixture
def env(stores: tuple[str, str], tmp_path: Path) -> dict[str, str]:
    trace = tmp_path / "trace"
    trace.mkdir()
    broker, backend = stores
    apart = {"CONVEYOR_RESULT_BACKEND": backend} if backend != broker else {}
    base = {k: v for k, v in os.environ.items() if k != "CONVEYOR_RESULT_BACKEND"}
    return {**base, "CONVEYOR_BROKER_URL": broker, **apart, "CONVEYOR_TEST_DIR": str(trace),
            "PYTHONPATH": str(ROOT)}


@pytest.fixture
def app(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Iterator[Conveyor]:
    """The test app of tests/integration/taskapp.py, bound to this test's stores."""
    for key in ("CONVEYOR_BROKER_URL", "CONVEYOR_TEST_DIR"):
        monkeypatch.setenv(key, env[key])
    from tests.integration import taskapp

    taskapp.app.broker_url = env["CONVEYOR_BROKER_URL"]
    taskapp.app.backend_url = env.get("CONVEYOR_RESULT_BACKEND", env["CONVEYOR_BROKER_URL"])
    yield taskapp.app
    taskapp.app.close()


def trace_lines(env: dict[str, str], name: str) -> list[str]:
    path = Path(env["CONVEYOR_TEST_DIR"]) / name
    return path.read_text().splitlines() if path.exists() else []


def wait_for(check: Callable[[], Any], timeout: float = 10.0, every: float = 0.05) -> Any:
    """Poll ``check`` until it returns something truthy (test helper, not product code)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"condition not met within {timeout}s")


class Workers:
    """Starts worker processes and makes sure none outlives the test."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env = env
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self, *args: str, lease: float | None = None) -> subprocess.Popen[bytes]:
        env = dict(self.env)
        if lease is not None:
            env["CONVEYOR_TEST_LEASE"] = str(lease)
        return self.spawn(["-A", "tests.integration.taskapp", *args], env)

    def spawn(self, args: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
        """``conveyor worker ARGS`` in a session of its own, stopped with the test."""
        argv = [sys.executable, "-m", "conveyor", "worker", "-l", "warning", *args]
        proc = subprocess.Popen(argv, env=env, cwd=ROOT, start_new_session=True)
        self.procs.append(proc)
        return proc

    def stop_all(self) -> None:
        interrupt_twice(self.procs, 10)


@pytest.fixture
def workers(env: dict[str, str]) -> Iterator[Workers]:
    started = Workers(env)
    yield started
    started.stop_all()
