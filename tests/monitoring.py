"""Test helpers for the dashboard and the metrics exporter: real ``conveyor dashboard`` and
``conveyor metrics`` processes on a free loopback port, stopped after the test."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
APP = "tests.integration.taskapp"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def monitoring_env(env: dict[str, str]) -> dict[str, str]:
    """Workers beating every half second (offline after 1.5 s) and sent events on, so a
    queued task is listed before a worker takes it."""
    return {**env, "CONVEYOR_HEARTBEAT_INTERVAL": "0.5", "CONVEYOR_SEND_SENT_EVENTS": "true"}


class Server:
    """``conveyor dashboard`` (or ``metrics``) as a process, answering at ``url``."""

    def __init__(self, env: dict[str, str], *args: str, command: str = "dashboard",
                 ready_path: str = "/", headers: dict[str, str] | None = None) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        argv = [sys.executable, "-m", "conveyor", command, "-A", APP, "--port", str(self.port),
                *args]
        self.proc = subprocess.Popen(argv, env=env, cwd=ROOT, start_new_session=True,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        self._wait_ready(ready_path, headers or {})

    def _wait_ready(self, path: str, headers: dict[str, str]) -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                out = self.proc.stdout.read().decode() if self.proc.stdout else ""
                raise AssertionError(f"the server exited early: {out}")
            try:
                if httpx.get(self.url + path, headers=headers, timeout=2).status_code < 500:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise AssertionError("the server did not answer within 30 s")

    def stop(self) -> str:
        """Stop it; returns what it printed."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        return self.proc.stdout.read().decode() if self.proc.stdout else ""


def wait_json(client: httpx.Client, path: str, check: object, timeout: float = 15.0) -> object:
    """Poll a JSON route until ``check(value)`` is truthy; returns the value."""
    deadline = time.monotonic() + timeout
    value: object = None
    while time.monotonic() < deadline:
        value = client.get(path).json()
        if check(value):  # type: ignore[operator]
            return value
        time.sleep(0.1)
    raise AssertionError(f"{path} never matched; last: {value!r}")
