"""arq: two worker processes, each with arq's defaults (up to 10 jobs at once, queue polled
every 0.5 s when idle, results kept an hour). Started through ``arq.worker.run_worker`` with
logging at WARNING, as every library here is (the ``arq`` command logs each job at INFO).
arq has no bulk enqueue: the bulk scenario is n/a and the end-to-end prefill gathers
``enqueue_job`` calls."""

from __future__ import annotations

import asyncio
import logging
import sys
from typing import Any

from arq import create_pool
from arq.connections import RedisSettings

from bench import common
from bench.adapter import Adapter


async def count(ctx: dict[str, Any]) -> None:
    await common.abump(ctx["redis"])


async def lat(ctx: dict[str, Any], sent: float) -> None:
    common.record_latency(sent)


class WorkerSettings:
    functions = [count, lat]
    redis_settings = RedisSettings.from_dsn(common.REDIS_URL)
    queue_name = common.QUEUE


class ArqAdapter(Adapter):
    name = "arq"
    stores = "job, in-progress marker and result (kept 1 h) per job"
    extra_key_patterns = ("arq:*",)

    def __init__(self) -> None:
        self.runner = asyncio.Runner()
        self.pool = self.runner.run(create_pool(WorkerSettings.redis_settings,
                                                default_queue_name=common.QUEUE))

    def send_single(self, n: int) -> None:
        async def go() -> None:
            for _ in range(n):
                await self.pool.enqueue_job("count")
        self.runner.run(go())

    def prefill(self, n: int) -> None:
        async def go() -> None:
            for i in range(0, n, 500):
                await asyncio.gather(*(self.pool.enqueue_job("count")
                                       for _ in range(min(500, n - i))))
        self.runner.run(go())

    def send_latency(self, sent: float) -> None:
        self.runner.run(self.pool.enqueue_job("lat", sent))

    def worker_argvs(self) -> list[list[str]]:
        return [[sys.executable, "-m", __name__]] * 2

    def close(self) -> None:
        self.runner.run(self.pool.aclose())
        self.runner.close()


Adapter_ = ArqAdapter

if __name__ == "__main__":
    from arq.worker import run_worker

    logging.basicConfig(level=logging.WARNING)
    run_worker(WorkerSettings)  # type: ignore[arg-type]
