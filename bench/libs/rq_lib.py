"""RQ: a worker pool of two workers (``rq worker-pool -n 2``) with RQ's default Worker class,
which forks a work horse for every job. Each job stores its result (default result_ttl)."""

from __future__ import annotations

from redis import Redis
from rq import Queue

from bench import common
from bench.adapter import Adapter, script


def count() -> None:
    common.bump()


def lat(sent: float) -> None:
    common.record_latency(sent)


class RQAdapter(Adapter):
    name = "rq"
    stores = "job hash and result per job; a forked work horse per job (default Worker)"
    bulk_api = "Queue.enqueue_many (one pipeline)"
    extra_key_patterns = ("rq:*",)

    def __init__(self) -> None:
        self.conn = Redis.from_url(common.REDIS_URL)
        self.queue = Queue(common.QUEUE, connection=self.conn)

    def send_single(self, n: int) -> None:
        enqueue = self.queue.enqueue
        for _ in range(n):
            enqueue(count)

    def send_bulk(self, n: int) -> None:
        self.queue.enqueue_many([Queue.prepare_data(count) for _ in range(n)])

    def send_latency(self, sent: float) -> None:
        self.queue.enqueue(lat, sent)

    def worker_argvs(self) -> list[list[str]]:
        return [[script("rq"), "worker-pool", "-n", "2", "-u", common.REDIS_URL,
                 "-l", "WARNING", common.QUEUE]]

    def close(self) -> None:
        self.conn.close()


Adapter_ = RQAdapter
