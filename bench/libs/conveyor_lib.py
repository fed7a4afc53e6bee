"""Conveyor: the app, its tasks and the adapter. Results are on (the default): every task
records PENDING at publish, STARTED, then SUCCESS, before its message is acked.

Variants (``BENCH_VARIANT``), for finding where the time goes: ``async`` makes the task bodies
``async def`` (they run on the worker's event loop instead of a thread), ``noresult`` sets
``ignore_result=True`` (no result records; still acked after the task), ``prefetch`` runs the
workers with ``--prefetch 16`` (each process holds up to 16 messages, saving a claim round trip
per task), ``noevents`` turns task and worker events off (``events=False``), to measure what
they cost.

On RabbitMQ the broker carries messages only (publisher confirms always on, acks after the
outcome): ``conveyor`` stores its results in Redis (the run's db, under the scenario's prefix);
``conveyor-noresult`` stores none, but the app still names Redis as its backend, because a
worker keeps its remote-control stream and events there and will not start without one."""

from __future__ import annotations

import os
import sys
import time
from typing import Any

from bench import common
from bench.adapter import Adapter
from conveyor import Conveyor, chord, group


def broker_url() -> str:
    if common.BACKEND == "redis":
        return redis_url()
    if common.BACKEND == "rabbitmq":
        return f"{common.AMQP_URL}?prefix={common.NS}."
    query = os.environ.get("BENCH_SQLITE_QUERY", "")
    return f"sqlite:///{common.DIR}/conveyor.db" + (f"?{query}" if query else "")


def redis_url() -> str:
    return f"{common.REDIS_URL}?prefix={common.NS}"


VARIANT = os.environ.get("BENCH_VARIANT", "")
no_result = VARIANT == "noresult"
#: RabbitMQ keeps no results, so they go to Redis. With results off Redis is still named: the
#: worker keeps its control stream and events in the backend, and refuses to start without one.
BACKEND_URL = redis_url() if common.BACKEND == "rabbitmq" else None
app = Conveyor("bench", broker=broker_url(), backend=BACKEND_URL, default_queue=common.QUEUE,
               events=VARIANT != "noevents")

if VARIANT == "async":
    @app.task(name="count")
    async def count() -> None:
        await common.abump()

    @app.task(name="lat")
    async def lat(sent: float) -> None:
        common.record_latency(sent)
else:
    @app.task(name="count", ignore_result=no_result)
    def count() -> None:
        common.bump()

    @app.task(name="lat", ignore_result=no_result)
    def lat(sent: float) -> None:
        common.record_latency(sent)


@app.task(name="wadd")
def wadd(x: int, y: int) -> int:
    return x + y


@app.task(name="wsum")
def wsum(values: list[int]) -> int:
    common.count_callback()
    return sum(values)


class ConveyorAdapter(Adapter):
    name = "conveyor"
    stores = ("publisher confirms; " if common.BACKEND == "rabbitmq" else "") + (
        "no result records; ack after the task" if no_result else
        "PENDING, STARTED, SUCCESS result records per task"
        + (" (in Redis)" if BACKEND_URL else "") + "; ack after the result")
    if BACKEND_URL and no_result:
        stores += " (events and control stream in Redis)"
    bulk_api = "task.map (one round trip)"

    def __init__(self) -> None:
        self.ids: list[str] = []

    def send_single(self, n: int) -> None:
        delay = count.delay
        for _ in range(n):
            delay()

    def send_bulk(self, n: int) -> None:
        count.map([()] * n)

    def prefill(self, n: int) -> None:
        if len(common.QUEUES) > 1:  # a scaling point: spread evenly over the queues
            messages = [app.build_message("count", count.options, (), {},
                                          queue=common.QUEUES[i % len(common.QUEUES)])
                        for i in range(n)]
            app.publish(messages, track=not no_result)
            self.ids = [m.id for m in messages] if not no_result else []
            return
        self.ids = [r.id for r in count.map([()] * n)] if not no_result else []
        if no_result:
            count.map([()] * n)

    def send_latency(self, sent: float) -> None:
        lat.delay(sent)

    workflows = True

    def send_group(self, n: int) -> Any:
        return group(wadd.s(i, i) for i in range(n)).apply_async()

    def send_chord(self, n: int) -> Any:
        return chord(wadd.s(i, i) for i in range(n))(wsum.s())

    def wait_result(self, handle: Any, timeout: float) -> Any:
        return handle.get(timeout=timeout)

    def worker_argvs(self) -> list[list[str]]:
        return [[sys.executable, "-m", "conveyor", "worker", "-A", f"{__name__}:app",
                 "-Q", ",".join(common.QUEUES), "-c", str(common.PROCS), "--pool", "process",
                 "-l", "warning",
                 *(["--prefetch", "16"] if VARIANT == "prefetch" else [])]]

    def verify(self, n: int) -> dict[str, Any]:
        """Count result states; the last tasks may still be settling, so look for up to 5 s."""
        deadline = time.monotonic() + 5.0
        while True:
            states: dict[str, int] = {}
            for i in range(0, len(self.ids), 1000):
                for rec in app.backend.get_many(self.ids[i:i + 1000]):
                    key = "missing" if rec is None else str(rec.state)
                    states[key] = states.get(key, 0) + 1
            if states.get("SUCCESS", 0) >= n or time.monotonic() > deadline:
                return {"result_states": states}
            time.sleep(0.1)

    def close(self) -> None:
        app.close()


Adapter_ = ConveyorAdapter
