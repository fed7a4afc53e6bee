"""Instructions per task, counted by valgrind: a figure the shared machine's noise cannot move.

    python -m bench.instructions [--store sqlite|redis] [--variants events,noevents] [--n 300]

Runs one in-process worker (one slot, the execution path a process-pool child runs) over ``n``
and ``3n`` queued no-op tasks under ``valgrind --tool=callgrind``, and reports the difference of
the two instruction totals divided by ``2n``: what one more task costs, start-up excluded. It
counts every thread of the process (the event loop, the SQLite statement thread, the task
thread) but not the Redis server. Valgrind makes the run about fifty times slower.

Variants: ``events`` (the default app), ``noevents`` (``events=False``), ``async`` (an
``async def`` task: no thread hand-off).
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import uuid

#: The child: queue ``n`` no-op tasks, run them with one Worker, exit.
CHILD = r"""
import asyncio, sys
from conveyor import Conveyor
from conveyor.worker.worker import Worker

url, n, variant = sys.argv[1], int(sys.argv[2]), sys.argv[3]
app = Conveyor("instructions", broker=url, events=variant != "noevents")

if variant == "async":
    @app.task(name="noop")
    async def noop() -> None: ...
else:
    @app.task(name="noop")
    def noop() -> None: ...

noop.map([()] * n)

async def main() -> None:
    worker = Worker(app, ["default"], concurrency=1, pool="process")
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


def instructions(url: str, n: int, variant: str, script: str) -> int:
    """Total instructions of one child run under callgrind."""
    done = subprocess.run(
        ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", sys.executable,
         script, url, str(n), variant], capture_output=True, text=True, check=True)
    found = re.search(r"I\s+refs:\s+([\d,]+)", done.stderr)
    if found is None:
        raise RuntimeError(f"no instruction count in valgrind's output:\n{done.stderr[-2000:]}")
    return int(found.group(1).replace(",", ""))


REDIS = "redis://127.0.0.1:6379/15"


def count_run(store: str, n: int, variant: str, scratch: str, script: str) -> int:
    """One run on a fresh store: a new SQLite file, or a private Redis prefix deleted after."""
    if store == "sqlite":
        return instructions(f"sqlite:///{scratch}/{uuid.uuid4().hex}.db", n, variant, script)
    prefix = f"cvi-{uuid.uuid4().hex[:8]}"
    try:
        return instructions(f"{REDIS}?prefix={prefix}", n, variant, script)
    finally:
        import redis

        client = redis.Redis.from_url(REDIS)
        keys = list(client.scan_iter(match=f"*{prefix}*", count=1000))
        if keys:
            client.delete(*keys)
        client.close()


def per_task(store: str, variant: str, n: int, scratch: str, script: str) -> float:
    small = count_run(store, n, variant, scratch, script)
    large = count_run(store, 3 * n, variant, scratch, script)
    return (large - small) / (2 * n)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--store", choices=("sqlite", "redis"), action="append")
    parser.add_argument("--variants", default="events,noevents")
    parser.add_argument("--n", type=int, default=300)
    args = parser.parse_args()
    stores = args.store or ["sqlite", "redis"]
    variants = [v for v in args.variants.split(",") if v]
    with tempfile.TemporaryDirectory(prefix="cvi-") as scratch:
        script = os.path.join(scratch, "child.py")
        with open(script, "w") as f:
            f.write(CHILD)
        print("| store | variant | instructions per task |\n|---|---|---|")
        for store in stores:
            base = None
            for variant in variants:
                count = per_task(store, variant, args.n, scratch, script)
                base = base or count
                print(f"| {store} | {variant} | {count:,.0f} ({count / base:.2f}x) |",
                      flush=True)


if __name__ == "__main__":
    main()
