"""Tasks the integration tests run in real worker processes.

The broker URL comes from CONVEYOR_BROKER_URL; tasks that must leave a trace for the test append
a line to a file in CONVEYOR_TEST_DIR (runs are counted there, across processes).
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from pathlib import Path
from typing import Any

from conveyor import Conveyor, Task

app = Conveyor("itest", lease=float(os.environ.get("CONVEYOR_TEST_LEASE", "30")))


def _trace(name: str, line: str) -> None:
    with open(Path(os.environ["CONVEYOR_TEST_DIR"]) / name, "a") as fh:
        fh.write(line + "\n")


@app.task
def add(x: int, y: int) -> int:
    return x + y


@app.task
async def async_mul(x: int, y: int) -> int:
    await asyncio.sleep(0.01)
    return x * y


@app.task
def started_at(tag: str) -> float:
    _trace("started", tag)
    return time.time()


@app.task(bind=True, retries=3, retry_backoff=0.2, retry_jitter=False)
def flaky(self: Task[Any, Any], failures: int) -> dict[str, int]:
    if self.request.retries < failures:
        raise ConnectionError(f"failure {self.request.retries + 1}")
    return {"retries": self.request.retries, "attempt": self.request.attempt}


@app.task(bind=True)
def explicit_retry(self: Task[Any, Any]) -> int:
    if self.request.retries < 1:
        self.retry(countdown=0.2)
    return self.request.retries


@app.task
def always_fails() -> None:
    raise ValueError("this task always fails")


@app.task(bind=True)
def slow(self: Task[Any, Any], seconds: float, tag: str) -> str:
    _trace("runs", f"{tag} {os.getpid()} {self.request.attempt}")
    time.sleep(seconds)
    _trace("done", tag)
    return tag


@app.task(time_limit=0.5)
def overrun() -> None:
    time.sleep(30)


@app.task(time_limit=0.5)
async def async_overrun() -> None:
    await asyncio.sleep(30)


@app.task(bind=True)
def huge(self: Task[Any, Any]) -> int:
    _trace("runs", self.request.id)
    return 2**70  # more than JSON carries


@app.task(bind=True, delivery_limit=2)
def crashes_its_process(self: Task[Any, Any]) -> None:
    _trace("runs", f"{self.request.id} {self.request.attempt}")
    os._exit(3)


@app.task(track_started=False)
def untracked(seconds: float) -> str:
    time.sleep(seconds)
    return "done"


@app.periodic(every=1.0, name="every-second", bind=True,
              catch_up=os.environ.get("CONVEYOR_TEST_CATCH_UP", "all"))  # type: ignore[arg-type]
def tick(self: Task[Any, Any]) -> None:
    """Leaves the tick it ran for (and its task id) in the trace file "ticks"."""
    when = self.request.scheduled_for
    assert when is not None
    _trace("ticks", f"{when.timestamp():.3f} {self.request.id}")


@app.task
def ledger(values: list[int], tag: str) -> int:
    """A chord callback that leaves a line per run in the trace file "ledger"."""
    _trace("ledger", f"{tag} {sum(values)}")
    return sum(values)


@app.task
def nap(x: int, seconds: float) -> int:
    """A chord member that takes a while, leaving a line in the trace file "naps"."""
    time.sleep(seconds)
    _trace("naps", str(x))
    return x


# The control tests' tasks live in their own module, registered on this app.
from tests.integration import control_tasks as _control_tasks  # noqa: E402, F401


@app.task(bind=True)
def where(self: Task[Any, Any], seconds: float) -> str:
    """Sleeps ``seconds`` and says which thread ran it: "loop" (the worker's event loop thread,
    the process's main thread) or "pool"; leaves a line per run in the trace file "where"."""
    _trace("where", f"{self.request.id} {os.getpid()}")
    time.sleep(seconds)
    return "loop" if threading.current_thread() is threading.main_thread() else "pool"


@app.task
def runs_a_loop(x: int) -> list[Any]:
    """A sync task running a coroutine of its own with ``asyncio.run``; the value and which
    thread ran it, as :func:`where` says."""
    async def double() -> int:
        return 2 * x

    on_loop = threading.current_thread() is threading.main_thread()
    return [asyncio.run(double()), "loop" if on_loop else "pool"]


@app.task
def exits(code: int) -> None:
    raise SystemExit(code)  # sys.exit() in a task: the task fails, the worker stays
