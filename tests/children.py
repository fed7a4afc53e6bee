"""Child processes for tests that need a store used from several OS processes at once."""

from __future__ import annotations

import asyncio
import contextlib
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from conveyor.brokers import open_store
from conveyor.brokers.base import PullConsumer
from conveyor.errors import BrokerUnavailable

ROOT = Path(__file__).resolve().parents[1]


class Child:
    """A child process whose stdout lines arrive on a queue (read by a thread, never blocking).

    Subclasses set ``code``: the ``python -c`` program that runs the child side.
    """

    code = ""

    def __init__(self, *argv: str, extra_env: dict[str, str] | None = None) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", self.code, *argv], cwd=ROOT, stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env={**os.environ, "PYTHONPATH": str(ROOT), **(extra_env or {})},
        )
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            self.lines.put(raw.decode().rstrip("\n"))
        self.lines.put(None)

    def line(self, timeout: float = 20.0) -> str:
        got = self.lines.get(timeout=timeout)
        if got is None:
            raise AssertionError(f"child exited with {self.proc.wait()} before writing a line")
        return got

    def tell(self, text: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(text.encode() + b"\n")
        self.proc.stdin.flush()

    def rest(self, timeout: float = 30.0) -> list[str]:
        """Every remaining line, once the child exits."""
        assert self.proc.wait(timeout) == 0
        lines: list[str] = []
        while (got := self.lines.get(timeout=5)) is not None:
            lines.append(got)
        return lines

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.kill()
            self.proc.wait()
        self.reader.join(5)
        for pipe in (self.proc.stdin, self.proc.stdout):
            if pipe is not None:
                with contextlib.suppress(OSError):
                    pipe.close()


# -- the child side: modes shared by the stores' multi-process tests ---------------------------


def run(modes: dict[str, Any], argv: list[str]) -> None:
    """Entry point of a child process: ``MODE URL [ARGS...]``."""
    mode, url, *rest = argv
    asyncio.run(modes[mode](url, *rest))


def say(*parts: object) -> None:
    print(*parts, flush=True)


async def drain_and_ack(url: str, idle: str, lease: str = "30") -> None:
    """Ack everything on ``q`` until nothing came for ``idle`` seconds; print each id as it
    arrives. An ack that fails because Redis is down is reported and left to redelivery."""
    store = open_store(url)
    consumer = store.consume(["q"], prefetch=8, lease=float(lease))
    say("ready")
    while True:
        try:
            delivery = await asyncio.wait_for(anext(consumer), float(idle))
        except TimeoutError:
            break
        say(delivery.envelope.id)
        try:
            await delivery.ack()
        except BrokerUnavailable:
            say("ack-failed")
    await consumer.close()
    await store.aclose()


async def hold(url: str, count: str) -> None:
    """Take ``count`` deliveries under a 1 s lease, print them, and keep renewing until killed."""
    store = open_store(url)
    consumer = store.consume(["q"], prefetch=int(count), lease=1.0)
    for _ in range(int(count)):
        delivery = await anext(consumer)
        say(delivery.envelope.id, delivery.attempt)
    say("holding")
    await asyncio.sleep(3600)


async def measure_wake(url: str, count: str) -> None:
    """Print, for each delivery, seconds since the publisher wrote its time into the body."""
    PullConsumer.max_idle = 60.0  # only a wake-up makes this consumer look again quickly
    store = open_store(url)
    consumer = store.consume(["q"], prefetch=1, lease=30)
    await store._wait(["q"], 0)  # subscribe before announcing readiness
    say("ready")
    for _ in range(int(count)):
        delivery = await anext(consumer)
        say(time.time() - float(delivery.envelope.body))
        await delivery.ack()
    await consumer.close()
    await store.aclose()



MODES: dict[str, Any] = {"drain": drain_and_ack, "hold": hold, "wake": measure_wake}


def interrupt_twice(procs: list[subprocess.Popen[Any]], wait: float) -> None:
    """Stop workers fast: SIGINT, then SIGINT again (which skips the grace period), each process
    group killed if it is still there after ``wait`` seconds. The second signal follows once the
    first had time to be taken: two sent back to back can merge into one pending signal, and
    one means a graceful stop that waits for running tasks."""
    running = [p for p in procs if p.poll() is None]
    for proc in running:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGCONT)  # a stopped worker takes no signal
            proc.send_signal(signal.SIGINT)
    time.sleep(0.2)
    for proc in running:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
    for proc in procs:
        try:
            proc.wait(wait)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
