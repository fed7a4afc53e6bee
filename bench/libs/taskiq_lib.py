"""Taskiq with taskiq-redis: ListQueueBroker (BRPOP; a message is gone once taken) and the
Redis result backend (every task stores its result). ``taskiq worker`` with two processes and
its defaults (up to 100 async tasks at once per process). No bulk API: bulk is n/a and the
end-to-end prefill gathers ``kiq`` calls."""

from __future__ import annotations

import asyncio

from taskiq_redis import ListQueueBroker, RedisAsyncResultBackend

from bench import common
from bench.adapter import Adapter, script

broker = ListQueueBroker(common.REDIS_URL, queue_name=common.QUEUE).with_result_backend(
    RedisAsyncResultBackend(common.REDIS_URL, prefix_str=common.NS, result_ex_time=3600))


@broker.task(task_name="count")
async def count() -> None:
    await common.abump()


@broker.task(task_name="lat")
async def lat(sent: float) -> None:
    common.record_latency(sent)


class TaskiqAdapter(Adapter):
    name = "taskiq"
    stores = "result per task (Redis result backend); message removed when taken"

    def __init__(self) -> None:
        self.runner = asyncio.Runner()
        self.runner.run(broker.startup())

    def send_single(self, n: int) -> None:
        async def go() -> None:
            for _ in range(n):
                await count.kiq()
        self.runner.run(go())

    def prefill(self, n: int) -> None:
        async def go() -> None:
            for i in range(0, n, 500):
                await asyncio.gather(*(count.kiq() for _ in range(min(500, n - i))))
        self.runner.run(go())

    def send_latency(self, sent: float) -> None:
        self.runner.run(lat.kiq(sent))

    def worker_argvs(self) -> list[list[str]]:
        return [[script("taskiq"), "worker", f"{__name__}:broker", "--workers", "2",
                 "--log-level", "WARNING"]]

    def close(self) -> None:
        self.runner.run(broker.shutdown())
        self.runner.close()


Adapter_ = TaskiqAdapter
