"""Soak: producers and workers run for a long time; the queue's accounting must hold and the
workers' memory must stay flat.

    python -m bench.soak --minutes 60 --broker sqlite|redis [--workers 2] [--rate 40]

Every ``--every`` seconds it prints one JSON line: tasks published, done (distinct ids), the
queue's ready, in-flight, delayed and dead counts, whether nothing went missing (done + queued
>= published) and each worker process's resident memory. At the end it stops publishing, lets
the workers drain, and prints a summary: published == done, duplicates, the queue empty, and
the RSS of each worker process at its first sample, its last and its highest.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from conveyor.brokers import queue_admin

ROOT = Path(__file__).resolve().parents[1]


def rss_kib(pid: int) -> int:
    """Resident memory of ``pid`` in KiB (0 once it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def processes(workers: list[subprocess.Popen[bytes]]) -> list[int]:
    """The worker processes and their pool children."""
    pids = []
    for proc in workers:
        pids.append(proc.pid)
        with contextlib.suppress(OSError):
            pids += [int(p) for p in Path(f"/proc/{proc.pid}/task/{proc.pid}/children")
                     .read_text().split()]
    return pids


def done_ids(work: Path) -> list[str]:
    ids: list[str] = []
    for path in work.glob("done-*"):
        ids += path.read_text().split()
    return ids


def start_workers(count: int, url: str, work: Path, concurrency: int) -> list[
        subprocess.Popen[bytes]]:
    env = {**os.environ, "CONVEYOR_BROKER_URL": url, "SOAK_DIR": str(work),
           "PYTHONPATH": str(ROOT), "CONVEYOR_EVENTS": "false"}
    argv = [sys.executable, "-m", "conveyor", "worker", "-A", "bench.soak_app", "-c",
            str(concurrency), "-l", "warning"]
    return [subprocess.Popen(argv, cwd=ROOT, env=env) for _ in range(count)]


def sample(app: Any, published: int, work: Path, pids: list[int], began: float) -> dict[str, Any]:
    stats = queue_admin(app.broker).stats("default")
    done = len(set(done_ids(work)))
    queued = stats.ready + stats.in_flight + stats.delayed + stats.dead
    return {"t": round(time.monotonic() - began), "published": published, "done": done,
            "ready": stats.ready, "in_flight": stats.in_flight, "delayed": stats.delayed,
            "dead": stats.dead, "accounted": done + queued >= published,
            "rss_kib": {str(pid): rss_kib(pid) for pid in pids}}


def run(args: argparse.Namespace, url: str, work: Path) -> dict[str, Any]:
    os.environ["CONVEYOR_BROKER_URL"] = url
    from bench.soak_app import app, chore

    workers = start_workers(args.workers, url, work, args.concurrency)
    rng, published, samples = random.Random(13), 0, []
    began = time.monotonic()
    until, next_sample = began + args.minutes * 60, began + args.every
    try:
        while time.monotonic() < until:
            chunk = max(1, round(args.rate / 10))
            sent = app.send_many([chore.s(round(rng.uniform(0.005, 0.05), 3))
                                  for _ in range(chunk)])
            published += len(sent)
            if rng.random() < 0.05:  # some delayed ones too
                chore.apply_async((0.01,), countdown=rng.uniform(1, 30))
                published += 1
            time.sleep(0.1)
            if time.monotonic() >= next_sample:
                samples.append(sample(app, published, work, processes(workers), began))
                print(json.dumps(samples[-1]), flush=True)
                next_sample += args.every
        deadline = time.monotonic() + 120
        while len(set(done_ids(work))) < published and time.monotonic() < deadline:
            time.sleep(1)
        final = sample(app, published, work, processes(workers), began)
    finally:
        for proc in workers:
            proc.send_signal(signal.SIGTERM)
        for proc in workers:
            proc.wait(60)
        app.close()
    return summary(samples, final, done_ids(work))


def summary(samples: list[dict[str, Any]], final: dict[str, Any],
            ids: list[str]) -> dict[str, Any]:
    rss: dict[str, dict[str, int]] = {}
    for one in samples:
        for pid, kib in one["rss_kib"].items():
            if kib:
                seen = rss.setdefault(pid, {"first": kib, "last": kib, "max": kib})
                seen["last"], seen["max"] = kib, max(seen["max"], kib)
    return {"published": final["published"], "done": final["done"],
            "duplicates": len(ids) - len(set(ids)),
            "queue_left": {k: final[k] for k in ("ready", "in_flight", "delayed", "dead")},
            "accounting_held_at_every_sample": all(s["accounted"] for s in samples),
            "all_done": final["done"] == final["published"], "rss_kib": rss}


def private_url(broker: str, work: Path) -> tuple[str, str]:
    if broker == "sqlite":
        return f"sqlite:///{work}/soak.db", ""
    prefix = f"soak-{uuid.uuid4().hex[:10]}"
    return f"redis://127.0.0.1:6379/0?prefix={prefix}", prefix


def drop_prefix(prefix: str) -> None:
    import redis

    client = redis.Redis(host="127.0.0.1", port=6379)
    keys = list(client.scan_iter(match=f"*{prefix}*", count=1000))
    for start in range(0, len(keys), 500):
        client.delete(*keys[start:start + 500])
    client.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=60.0)
    parser.add_argument("--broker", choices=["sqlite", "redis"], default="sqlite")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument("--rate", type=float, default=40.0, help="tasks published per second")
    parser.add_argument("--every", type=float, default=30.0, help="seconds between samples")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="conveyor-soak-") as tmp:
        work = Path(tmp)
        url, prefix = private_url(args.broker, work)
        try:
            result = run(args, url, work)
        finally:
            if prefix:
                drop_prefix(prefix)
    print(json.dumps({"summary": result, "broker": args.broker, "minutes": args.minutes}))
    if not (result["all_done"] and result["accounting_held_at_every_sample"]
            and not result["duplicates"]):
        raise SystemExit(1)


if __name__ == "__main__":
    main()
