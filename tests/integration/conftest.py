"""Integration fixtures: a private store per test and real worker processes started on it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from conveyor import Conveyor
from tests.stores import store_url

ROOT = Path(__file__).resolve().parents[2]
BROKERS = ["sqlite", "redis"]


@pytest.fixture(params=BROKERS)
def broker_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    with store_url(request.param, tmp_path) as url:
        yield url


@pytest.fixture
def env(broker_url: str, tmp_path: Path) -> dict[str, str]:
    trace = tmp_path / "trace"
    trace.mkdir()
    return {**os.environ, "CONVEYOR_BROKER_URL": broker_url, "CONVEYOR_TEST_DIR": str(trace),
            "PYTHONPATH": str(ROOT)}


@pytest.fixture
def app(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Iterator[Conveyor]:
    """The test app of tests/integration/taskapp.py, bound to this test's store."""
    for key in ("CONVEYOR_BROKER_URL", "CONVEYOR_TEST_DIR"):
        monkeypatch.setenv(key, env[key])
    from tests.integration import taskapp

    taskapp.app.broker_url = taskapp.app.backend_url = env["CONVEYOR_BROKER_URL"]
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
        for proc in self.procs:
            if proc.poll() is None:  # twice: the second signal stops without the grace period
                proc.send_signal(signal.SIGINT)
                proc.send_signal(signal.SIGINT)
        for proc in self.procs:
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


@pytest.fixture
def workers(env: dict[str, str]) -> Iterator[Workers]:
    started = Workers(env)
    yield started
    started.stop_all()
