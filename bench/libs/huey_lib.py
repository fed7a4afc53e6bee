"""Huey: SqliteHuey on the SQLite run, RedisHuey (blocking pop) on the Redis run. Consumer:
two worker processes (``-w 2 -k process``), default polling settings. A task that returns
None stores no result (Huey's default), and a message is deleted from the queue when a worker
takes it (at-most-once)."""

from __future__ import annotations

from huey import RedisHuey, SqliteHuey

from bench import common
from bench.adapter import Adapter, script

if common.BACKEND == "redis":
    huey = RedisHuey(common.NS, url=common.REDIS_URL)
else:
    huey = SqliteHuey(common.NS, filename=f"{common.DIR}/huey.db")


@huey.task()
def count() -> None:
    common.bump()


@huey.task()
def lat(sent: float) -> None:
    common.record_latency(sent)


class HueyAdapter(Adapter):
    name = "huey"
    stores = "no result (the task returns None); message removed when taken"
    # RedisHuey strips the name's punctuation from its keys (huey.redis.<name>, ...)
    extra_key_patterns = (f"huey.*.{huey.storage.name}",)

    def send_single(self, n: int) -> None:
        for _ in range(n):
            count()

    def send_latency(self, sent: float) -> None:
        lat(sent)

    def worker_argvs(self) -> list[list[str]]:
        return [[script("huey_consumer"), f"{__name__}.huey", "-w", "2", "-k", "process", "-q"]]


Adapter_ = HueyAdapter
