"""Where a task's time goes, producer and worker, sampled by py-spy (every thread).

    python -m bench.profile [--store sqlite|redis] [--n 20000]

A child process queues ``n`` no-op tasks with ``task.map`` (the producer), then runs one
in-process worker of one slot, the path a process-pool child runs (short sync tasks on the
loop's thread), over them (the worker).
py-spy samples every thread of it (the event loop, the SQLite statement thread, the task
thread) without stopping it (``--nonblocking``). Each sample is charged to the frame where it
was taken (its leaf), put in a bucket by that frame's file; a sample under ``map`` counts for
the producer. These are wall-clock samples of each thread: a commit waiting for its fsync
counts where it waits, and a thread waiting for work (the event loop in ``select``, a hand-off
thread in ``queue.get``) is put apart as idle. The result, per side: thread-milliseconds per
1,000 tasks by bucket and their shares of the busy time. Run under the bench venv (py-spy is in
bench/requirements.txt).
"""

from __future__ import annotations

import argparse
import collections
import os
import subprocess
import sys
import tempfile
import uuid

#: The child: queue n no-op tasks (producer), then work them off with one slot (worker).
CHILD = r"""
import asyncio, sys
from conveyor import Conveyor
from conveyor.worker.worker import Worker

url, n = sys.argv[1], int(sys.argv[2])
app = Conveyor("profile", broker=url)

@app.task(name="noop")
def noop() -> None: ...

for i in range(0, n, 5000):
    noop.map([()] * min(5000, n - i))

async def main() -> None:
    worker = Worker(app, ["default"], concurrency=1, pool="process", inline=True)
    async def stop_when_done() -> None:
        while worker.processed < n:
            await asyncio.sleep(0.01)
        await worker.stop()
    stopper = asyncio.ensure_future(stop_when_done())
    await worker.run()
    await stopper

asyncio.run(main())
app.close()
"""

#: (bucket, substrings of a leaf frame "function (file)"), first match wins.
BUCKETS = [
    ("idle: waiting for work", ("EpollSelector.select", "handoff.py:70)")),
    ("thread hop: queue.put / wake the loop", ("Handoff._put", "_write_to_self",
                                              "call_soon_threadsafe")),
    ("SQLite commit (fsync)", ("immediate (conveyor/brokers/sqlite.py:286)",)),
    ("SQLite statements (brokers/sqlite*.py)", ("brokers/sqlite",)),
    ("Redis round trips (redis-py, brokers/redis.py)", ("redis/", "brokers/redis", "socket")),
    ("other broker code (brokers/)", ("conveyor/brokers/",)),
    ("encoding (serializers, message, uuid, json)", ("serializers.py", "message.py", "uuid.py",
                                                    "json/", "signing.py")),
    ("events and metrics", ("conveyor/events", "middleware/events.py", "metrics.py")),
    ("execution seam (middleware/)", ("conveyor/middleware/",)),
    ("worker loop (worker/, handoff, outcome)", ("conveyor/worker/", "handoff.py",
                                                 "outcome.py")),
    ("producer (sending, task, app, options, config)", ("sending.py", "task.py",
                                                        "conveyor/app.py", "options.py",
                                                        "config.py")),
    ("event loop, threads, futures", ("asyncio/", "concurrent/", "threading.py",
                                      "selectors.py", "queue.py")),
    ("clock, logging", ("clock.py", "logging/")),
    ("start-up: imports", ("importlib", "<module>", "dataclasses.py", "enum.py")),
]
IDLE = BUCKETS[0][0]
#: Frames that mark a sample as the producer's: the send, and the publish in the statement
#: thread of the SQLite store.
PRODUCER = ("Task.map (", "publish_rows (", "SQLiteStore._publish (")


def bucket(leaf: str) -> str:
    for name, needles in BUCKETS:
        if any(n in leaf for n in needles):
            return name
    return "other"


def read(path: str) -> dict[str, collections.Counter[str]]:
    """Samples per bucket, apart for the producer (under ``map``) and the worker."""
    out: dict[str, collections.Counter[str]] = {"producer": collections.Counter(),
                                                "worker": collections.Counter()}
    with open(path) as f:
        for line in f:
            stack, _, count = line.rstrip("\n").rpartition(" ")
            frames = [x for x in stack.split(";") if not x.startswith(("process ", "thread "))]
            if not frames:
                continue
            side = "producer" if any(x.startswith(PRODUCER) for x in frames) else "worker"
            out[side][bucket(frames[-1])] += int(count)
    return out


def table(samples: collections.Counter[str], n: int, rate: int) -> str:
    busy = sum(c for k, c in samples.items() if k != IDLE)

    def ms(count: int) -> float:  # thread-milliseconds per 1,000 tasks
        return 1e6 * count / rate / n

    lines = [f"busy {ms(busy):.0f} thread-ms per 1,000 tasks ({busy} samples; idle"
             f" {ms(samples[IDLE]):.0f})\n",
             "| where | thread-ms per 1,000 tasks | share of busy |", "|---|---|---|"]
    for key, count in samples.most_common():
        if key != IDLE:
            lines.append(f"| {key} | {ms(count):.1f} | {100 * count / max(busy, 1):.0f}% |")
    return "\n".join(lines)


def profile(url: str, n: int, rate: int, scratch: str) -> None:
    script = os.path.join(scratch, "child.py")
    with open(script, "w") as f:
        f.write(CHILD)
    out = os.path.join(scratch, "prof.txt")
    spy = os.path.join(os.path.dirname(sys.executable), "py-spy")
    subprocess.run([spy, "record", "--nonblocking", "--format", "raw", "--threads", "-r",
                    str(rate), "-o", out,
                    "--", sys.executable, script, url, str(n)], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for side, samples in read(out).items():
        print(f"\n#### {side}\n\n{table(samples, n, rate)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--store", choices=("sqlite", "redis"), default="sqlite")
    parser.add_argument("--n", type=int, default=20_000)
    parser.add_argument("--rate", type=int, default=250, help="samples per second")
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/15")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="cvp-") as scratch:
        if args.store == "sqlite":
            profile(f"sqlite:///{os.path.join(scratch, 'p.db')}", args.n, args.rate, scratch)
            return
        prefix = f"cvp-{uuid.uuid4().hex[:8]}"
        try:
            profile(f"{args.redis}?prefix={prefix}", args.n, args.rate, scratch)
        finally:
            import redis

            client = redis.Redis.from_url(args.redis)
            keys = list(client.scan_iter(match=f"*{prefix}*", count=1000))
            if keys:
                client.delete(*keys)
            client.close()


if __name__ == "__main__":
    main()
