"""Tasks for the RabbitMQ process tests: RabbitMQ carries the messages, Redis keeps results.

Every task that runs leaves a line in a ledger file under CONVEYOR_TEST_DIR, so a test counts
runs across worker processes (and across kills) without trusting the result backend alone.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from conveyor import Conveyor, Task

app = Conveyor("amqptest", routes={"amqptest.invalidate": "fanout/cache",
                                   "amqptest.image_*": "topic/media/image.png"})


def _ledger(name: str, *fields: object) -> None:
    line = " ".join(str(f) for f in fields)
    with open(Path(os.environ["CONVEYOR_TEST_DIR"]) / name, "a") as fh:
        fh.write(line + "\n")


@app.task(name="amqptest.record")
def record(tag: str, seconds: float = 0.0) -> str:
    """Sleeps ``seconds``, then writes ``tag`` to the ledger "done"."""
    _ledger("started", tag, os.getpid())
    time.sleep(seconds)
    _ledger("done", tag, os.getpid(), f"{time.time():.3f}")
    return tag


@app.task(name="amqptest.long", time_limit=120)
def long(seconds: float) -> float:
    """A task allowed two minutes: longer than a small consumer timeout."""
    time.sleep(seconds)
    return seconds


@app.task(name="amqptest.slow_once")
def slow_once(tag: str, seconds: float) -> str:
    """Sleeps ``seconds`` on its first run only (a late ack once), then writes "done"."""
    path = Path(os.environ["CONVEYOR_TEST_DIR"]) / "started"
    runs = path.read_text().split() if path.exists() else []
    first = tag not in runs[::2]  # lines are "tag pid"
    _ledger("started", tag, os.getpid())
    time.sleep(seconds if first else 0.0)
    _ledger("done", tag, os.getpid(), f"{time.time():.3f}")
    return tag


@app.task(name="amqptest.invalidate", ignore_result=True)  # every worker runs it
def invalidate(key: str) -> None:
    _ledger("invalidated", key, os.environ.get("WORKER_TAG", "?"))


@app.task(name="amqptest.image_resize", ignore_result=True)  # copies share one id
def image_resize(name: str) -> None:
    _ledger("images", name, os.environ.get("WORKER_TAG", "?"))


@app.task(name="amqptest.flaky", bind=True, retries=2, retry_backoff=1.0, retry_jitter=False)
def flaky(self: Task[Any, Any], tag: str) -> int:
    _ledger("flaky", tag, self.request.retries, f"{time.time():.3f}")
    if self.request.retries < 1:
        raise ConnectionError("first run fails")
    return self.request.retries
