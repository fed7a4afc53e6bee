"""The floors: what the broker gives a plain loop, with no task queue around it.

``raw`` on Redis: ``LPUSH`` to send (a pipeline of them for bulk), ``BRPOP`` one message per
task in each worker process (at-most-once: a message taken is gone). On SQLite: one table,
``synchronous=FULL`` in WAL mode, one row ``INSERT`` and commit per send (one transaction for
bulk), and each worker process claims one row per transaction (``DELETE ... RETURNING``),
polling every millisecond when the table is empty. The body is a small JSON object, decoded by
the worker before it counts the task, as a queue would.

    python -m bench.libs.raw_lib    # one worker process (the driver starts two)
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import sys
import time
from typing import Any

from bench import common
from bench.adapter import Adapter

DB = f"{common.DIR}/raw.db"
SCHEMA = "CREATE TABLE IF NOT EXISTS jobs (id INTEGER PRIMARY KEY, body BLOB NOT NULL)"
CLAIM = "DELETE FROM jobs WHERE id = (SELECT min(id) FROM jobs) RETURNING body"


def body(task: str, *args: float) -> bytes:
    return json.dumps({"task": task, "args": list(args)}).encode()


def connect() -> sqlite3.Connection:
    conn = sqlite3.connect(DB, isolation_level=None, timeout=30.0)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute(SCHEMA)
    return conn


def run(message: bytes) -> None:
    data = json.loads(message)
    if data["task"] == "lat":
        common.record_latency(data["args"][0])
    else:
        common.bump()


def work_redis() -> None:
    import redis

    client = redis.Redis.from_url(common.REDIS_URL)
    while True:
        got = client.brpop([common.QUEUE], timeout=1)
        if got is not None:
            run(got[1])


def work_sqlite() -> None:
    conn = connect()
    while True:
        conn.execute("BEGIN IMMEDIATE")
        row = conn.execute(CLAIM).fetchone()
        conn.execute("COMMIT")
        if row is None:
            time.sleep(0.001)
        else:
            run(row[0])


class RawAdapter(Adapter):
    name = "raw"
    stores = "nothing: a message taken is gone (at-most-once), no result, no retry"

    def __init__(self) -> None:
        self.client: Any = None
        self.conn: sqlite3.Connection | None = None
        if common.BACKEND == "redis":
            import redis

            self.client = redis.Redis.from_url(common.REDIS_URL)
            self.bulk_api = "pipeline of LPUSH (one round trip)"
        else:
            self.conn = connect()
            self.bulk_api = "executemany in one transaction"

    def _send(self, message: bytes) -> None:
        if self.conn is None:
            self.client.lpush(common.QUEUE, message)
        else:
            self.conn.execute("INSERT INTO jobs (body) VALUES (?)", (message,))

    def send_single(self, n: int) -> None:
        message = body("count")
        for _ in range(n):
            self._send(message)

    def send_bulk(self, n: int) -> None:
        message = body("count")
        if self.conn is None:
            pipe = self.client.pipeline(transaction=False)
            for _ in range(n):
                pipe.lpush(common.QUEUE, message)
            pipe.execute()
            return
        with self.conn:
            self.conn.execute("BEGIN")
            self.conn.executemany("INSERT INTO jobs (body) VALUES (?)", [(message,)] * n)

    def send_latency(self, sent: float) -> None:
        self._send(body("lat", sent))

    def worker_argvs(self) -> list[list[str]]:
        return [[sys.executable, "-m", "bench.libs.raw_lib"] for _ in range(common.PROCS)]

    def close(self) -> None:
        if self.client is not None:
            self.client.close()
        if self.conn is not None:
            self.conn.close()


Adapter_ = RawAdapter

if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        work_redis() if common.BACKEND == "redis" else work_sqlite()
