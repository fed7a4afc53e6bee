"""What every library's task bodies and the driver share: the run's settings (from the
environment, so worker processes see the same as the producer), the completion counter and
the latency log.

Settings (set by the driver for its own process and for the workers it starts):

``BENCH_BACKEND``  ``sqlite``, ``redis`` or ``rabbitmq``
``BENCH_DIR``      a private directory of this scenario: SQLite files, counters, latency logs
``BENCH_REDIS``    the Redis URL of the run (a private db), e.g. ``redis://127.0.0.1:6379/15``
``BENCH_AMQP``     the RabbitMQ URL of the run (a private vhost), for ``rabbitmq``
``BENCH_NS``       a name unique to this scenario; every Redis key of the run contains it
``BENCH_QUEUE``    the queue name
``BENCH_PROCS``    worker processes (task slots) of a scaling point, default 2
``BENCH_QUEUES``   queues of a scaling point, default 1 (then the queue is ``BENCH_QUEUE``)

Completion counting: on Redis a task body does one ``INCR`` of ``<ns>:done`` (the spec of the
Redis run); on SQLite and RabbitMQ it adds one to a per-process counter in a memory-mapped
file, which costs about a microsecond and needs no lock between processes, so no library pays
for the counting more than another.
"""

from __future__ import annotations

import glob
import mmap
import os
import struct
import threading
import time
from typing import Any

BACKEND = os.environ.get("BENCH_BACKEND", "sqlite")
DIR = os.environ.get("BENCH_DIR", "/tmp/conveyor-bench")
REDIS_URL = os.environ.get("BENCH_REDIS", "redis://127.0.0.1:6379/15")
AMQP_URL = os.environ.get("BENCH_AMQP", "amqp://guest:guest@127.0.0.1:5672/")
NS = os.environ.get("BENCH_NS", "bench")
QUEUE = os.environ.get("BENCH_QUEUE", f"{NS}-q")
#: Worker processes and queues of a scaling point (bench.driver sets them; 2 and 1 otherwise).
PROCS = int(os.environ.get("BENCH_PROCS", "2"))
QUEUES = [QUEUE] if int(os.environ.get("BENCH_QUEUES", "1")) <= 1 else [
    f"{QUEUE}-{i}" for i in range(int(os.environ["BENCH_QUEUES"]))]
DONE_KEY = f"{NS}:done"
CALLBACKS_KEY = f"{NS}:callbacks"

_lock = threading.Lock()
_state: dict[str, Any] = {}


# -- completion counter -----------------------------------------------------------------------
def _counter() -> mmap.mmap:
    pid = os.getpid()
    if _state.get("counter_pid") != pid:
        path = os.path.join(DIR, f"count.{pid}")
        with open(path, "wb") as f:
            f.write(b"\0" * 8)
        fd = os.open(path, os.O_RDWR)
        _state["counter"] = mmap.mmap(fd, 8)
        os.close(fd)
        _state["counter_pid"] = pid
    return _state["counter"]  # type: ignore[no-any-return]


def _redis() -> Any:
    pid = os.getpid()
    if _state.get("redis_pid") != pid:
        import redis

        _state["redis"] = redis.Redis.from_url(REDIS_URL)
        _state["redis_pid"] = pid
    return _state["redis"]


def bump() -> None:
    """Count one finished task (sync task bodies)."""
    if BACKEND == "redis":
        _redis().incr(DONE_KEY)
        return
    with _lock:
        m = _counter()
        m[0:8] = struct.pack("<q", struct.unpack("<q", m[0:8])[0] + 1)


async def abump(client: Any = None) -> None:
    """Count one finished task (async task bodies); ``client`` is an asyncio Redis client."""
    if BACKEND == "redis":
        if client is None:
            client = _aredis()
        await client.incr(DONE_KEY)
        return
    bump()


def _aredis() -> Any:
    import asyncio

    loop = asyncio.get_running_loop()
    if _state.get("aredis_loop") is not loop:
        import redis.asyncio

        _state["aredis"] = redis.asyncio.Redis.from_url(REDIS_URL)
        _state["aredis_loop"] = loop
    return _state["aredis"]


def done_count(client: Any = None) -> int:
    """Tasks counted so far (read by the driver)."""
    if BACKEND == "redis":
        value = (client or _redis()).get(DONE_KEY)
        return int(value or 0)
    total = 0
    for path in glob.glob(os.path.join(DIR, "count.*")):
        with open(path, "rb") as f:
            data = f.read(8)
        if len(data) == 8:
            total += struct.unpack("<q", data)[0]
    return total


# -- latency log ------------------------------------------------------------------------------
def record_latency(sent: float) -> None:
    """Note how long after ``sent`` (the producer's clock before its send) this task started.
    Call it first thing in the task body."""
    started = time.time()
    with _lock:
        pid = os.getpid()
        if _state.get("lat_pid") != pid:
            _state["lat"] = open(os.path.join(DIR, f"lat.{pid}"), "a", buffering=1)  # noqa: SIM115
            _state["lat_pid"] = pid
        _state["lat"].write(f"{started - sent:.9f}\n")


def latencies() -> list[float]:
    """Every latency recorded so far, in seconds (read by the driver)."""
    out: list[float] = []
    for path in glob.glob(os.path.join(DIR, "lat.*")):
        with open(path) as f:
            for line in f:
                line = line.strip()
                if line:
                    out.append(float(line))
    return out


# -- chord callbacks (the workflows scenario, Redis only) --------------------------------------
def count_callback() -> None:
    """Count one run of a chord callback."""
    _redis().incr(CALLBACKS_KEY)


def callback_count() -> int:
    return int(_redis().get(CALLBACKS_KEY) or 0)
