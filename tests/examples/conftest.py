"""Fixtures of the example tests: a private store (SQLite or Redis), and real processes (a
worker, a web server) started as the examples' READMEs say, stopped by PID afterwards."""

from __future__ import annotations

import io
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from tests.stores import store_url

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(params=["sqlite", "redis"])
def env(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[dict[str, str]]:
    with store_url(request.param, tmp_path) as url:
        yield {**os.environ, "CONVEYOR_BROKER_URL": url, "PYTHONPATH": str(ROOT)}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Processes:
    def __init__(self) -> None:
        self.started: list[subprocess.Popen[bytes]] = []

    def start(self, argv: list[str], env: dict[str, str], cwd: Path = ROOT,
              ) -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(argv, env=env, cwd=cwd, start_new_session=True)
        self.started.append(proc)
        return proc

    def stop(self) -> None:
        for proc in self.started:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.started:
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


@pytest.fixture
def processes() -> Iterator[Processes]:
    running = Processes()
    yield running
    running.stop()


def conveyor(*args: str) -> list[str]:
    return [sys.executable, "-m", "conveyor", *args, "-l", "warning"]


def wait_http(url: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            httpx.get(url, timeout=2.0)
            return
        except httpx.TransportError:
            time.sleep(0.1)
    raise AssertionError(f"{url} did not answer within {timeout}s")


def wait_final(base: str, task_id: str, timeout: float = 60.0,
               done: Callable[[dict[str, object]], bool] | None = None) -> dict[str, object]:
    """Poll ``GET {base}/tasks/{id}`` as the examples' pages do, until the task is final
    (``done``: how the app says so; the examples' ``ready`` field by default)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found: dict[str, object] = httpx.get(f"{base}/tasks/{task_id}", timeout=5.0).json()
        if done(found) if done is not None else found["ready"]:
            return found
        time.sleep(0.1)
    raise AssertionError(f"task {task_id} not final within {timeout}s")


def celery_final(found: dict[str, object]) -> bool:
    """Final as a Celery tutorial app's ``task_status`` says it (what its main.js polls for)."""
    return found["task_status"] in ("SUCCESS", "FAILURE")


def picture(width: int = 640, height: int = 480) -> bytes:
    from PIL import Image

    data = io.BytesIO()
    Image.linear_gradient("L").resize((width, height)).convert("RGB").save(data, "JPEG")
    return data.getvalue()
