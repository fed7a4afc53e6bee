"""Testing your own tasks: run what your code queued, in-process, through the worker's path.

```python
app = Conveyor("shop", broker="memory://")      # or your real broker URL in integration tests

def test_signup_sends_welcome():
    signup(user_id=1)                            # code under test calls send_email.delay(...)
    results = run_queued(app)                    # runs it now; re-raises the task's error
    assert results[0].get() == "sent to user 1"
```

Tasks run exactly as a worker would run them (decoding, retries, time limits, result storing),
so a test exercises the real serialization of your arguments.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from .brokers import queue_admin
from .middleware.base import Job
from .result import AsyncResult
from .states import State
from .worker.execution import execute
from .worker.runner import Runner

if TYPE_CHECKING:
    from .app import Conveyor


def run_queued(app: Conveyor, queues: Sequence[str] | None = None, *,
               include_delayed: bool = True, raise_errors: bool = True,
               timeout: float = 30.0) -> list[AsyncResult[Any]]:
    """Run every queued task of ``queues`` (default: all) until none is left, and return their
    results in the order they first ran. With ``include_delayed`` it also waits for delayed
    tasks and retries (keep countdowns short in tests). With ``raise_errors`` the first task
    that ended in FAILURE has its exception re-raised here."""
    admin = queue_admin(app.broker)
    names = list(queues) if queues is not None else admin.queues()
    ran = asyncio.run(_drain(app, names, include_delayed, timeout)) if names else []
    results = [AsyncResult[Any](task_id, app) for task_id in dict.fromkeys(ran)]
    if raise_errors:
        for result in results:
            if result.status is State.FAILURE:
                result.get(timeout=0)
    return results


async def _drain(app: Conveyor, queues: list[str], include_delayed: bool,
                 timeout: float) -> list[str]:
    runner = Runner(1)
    consumer = app.broker.consume(queues, prefetch=1, lease=max(timeout, 30.0))
    ran: list[str] = []
    try:
        async with asyncio.timeout(timeout):
            while await _still_pending(app, queues, include_delayed):
                try:
                    delivery = await asyncio.wait_for(anext(consumer), 0.2)
                except TimeoutError:
                    continue
                ran.append(delivery.envelope.id)
                await execute(Job(app, delivery, runner))
    finally:
        await consumer.close()
        runner.close()
    return ran


async def _still_pending(app: Conveyor, queues: list[str], include_delayed: bool) -> bool:
    """Whether work is left; a store with inexact counts must show none twice, a moment
    apart (a message on its way to the consumer is in no count)."""
    if _pending(app, queues, include_delayed):
        return True
    if queue_admin(app.broker).exact_counts:
        return False
    await asyncio.sleep(0.1)
    return _pending(app, queues, include_delayed)


def _pending(app: Conveyor, queues: list[str], include_delayed: bool) -> bool:
    admin = queue_admin(app.broker)
    stats = [admin.stats(q) for q in queues]
    return any(s.ready or s.in_flight or (include_delayed and s.delayed) for s in stats)
