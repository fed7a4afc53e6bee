"""How much CPU the dashboard takes while a busy system runs: 10 worker processes
heartbeating, about 200 tasks a second flowing through Redis, and a live page (an SSE client)
connected. Measures the dashboard process alone, over a minute, from /proc (psutil).

    .venv/bin/python -m bench.dashboard_cpu [--seconds 60] [--rate 200] [--workers 10]

A benchmark, not a test: the figure depends on the machine; docs/performance.md reports one
run. Every key lives under a private prefix, deleted afterwards.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import httpx
import psutil
import redis

ROOT = Path(__file__).resolve().parents[1]
APP = "bench.dashboard_app"


def start(argv: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "conveyor", *argv], env=env, cwd=ROOT,
                            start_new_session=True, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)


def stop(procs: list[subprocess.Popen[bytes]]) -> None:
    for proc in procs:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
    for proc in procs:
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def produce(url: str, rate: float, until: float, sent: list[int]) -> None:
    """Send ``rate`` tasks a second in batches of a tenth of a second."""
    sys.path.insert(0, str(ROOT))
    from bench.dashboard_app import app, noop

    app.broker_url = url
    batch, tick = max(1, int(rate / 10)), 0.1
    next_at = time.monotonic()
    while time.monotonic() < until:
        app.send_many([noop.s(i) for i in range(batch)])
        sent[0] += batch
        next_at += tick
        time.sleep(max(0.0, next_at - time.monotonic()))
    app.close()


def listen(url: str, stop_at: float, frames: list[int]) -> None:
    """A live tasks page without a browser: read its SSE stream until ``stop_at``."""
    with httpx.stream("GET", url + "/live?rows=1", timeout=None) as response:
        for line in response.iter_lines():
            if line.startswith("data: "):
                frames[0] += 1
            if time.monotonic() > stop_at:
                return


def browse(url: str, stop_at: float, frames: list[int]) -> None:
    """A real tab: headless Chromium showing the live tasks list until ``stop_at``."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path="/usr/bin/chromium", headless=True,
            args=["--no-sandbox", "--disable-background-networking", "--disable-gpu"])
        page = browser.new_page()
        page.goto(url + "/tasks")
        seen = set()
        while time.monotonic() < stop_at:
            time.sleep(1)
            seen.add(page.evaluate("document.body.dataset.liveVersion"))
        frames[0] = len(seen) - 1
        browser.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--rate", type=float, default=200.0)
    parser.add_argument("--workers", type=int, default=10)
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--port", type=int, default=5599)
    parser.add_argument("--browser", action="store_true",
                        help="a Chromium tab on /tasks instead of a bare SSE client")
    args = parser.parse_args()
    prefix = f"benchdash-{uuid.uuid4().hex[:8]}"
    url = f"{args.redis}?prefix={prefix}"
    env = {**os.environ, "CONVEYOR_BROKER_URL": url, "PYTHONPATH": str(ROOT)}
    procs: list[subprocess.Popen[bytes]] = []
    with tempfile.TemporaryDirectory() as tmp:
        try:
            run(args, url, env, procs, Path(tmp))
        finally:
            stop(procs)
            client = redis.Redis.from_url(args.redis)
            keys = list(client.scan_iter(match=f"*{prefix}*", count=1000))
            if keys:
                client.delete(*keys)


def run(args: argparse.Namespace, url: str, env: dict[str, str],
        procs: list[subprocess.Popen[bytes]], tmp: Path) -> None:
    for n in range(args.workers):
        procs.append(start(["worker", "-A", APP, "--pool", "async", "-c", "8", "-n", f"w{n}",
                            "-l", "warning"], env))
    dash = start(["dashboard", "-A", APP, "--port", str(args.port), "--db",
                  str(tmp / "index.db")], env)
    procs.append(dash)
    base = f"http://127.0.0.1:{args.port}"
    for _ in range(300):
        try:
            if httpx.get(base + "/api/workers").json().__len__() >= args.workers:
                break
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    warm, seconds = 10.0, args.seconds
    until = time.monotonic() + warm + seconds + 2
    sent, frames = [0], [0]
    threads = [threading.Thread(target=produce, args=(url, args.rate, until, sent)),
               threading.Thread(target=browse if args.browser else listen,
                                args=(base, until, frames))]
    for thread in threads:
        thread.start()
    time.sleep(warm)
    process = psutil.Process(dash.pid)
    cpu0, sent0, t0 = process.cpu_times(), sent[0], time.monotonic()
    time.sleep(seconds)
    cpu1, sent1, t1 = process.cpu_times(), sent[0], time.monotonic()
    overview = httpx.get(base + "/api/overview").json()
    for thread in threads:
        thread.join()
    used = (cpu1.user - cpu0.user) + (cpu1.system - cpu0.system)
    print(f"workers online: {overview['workers_online']} of {args.workers}")
    print(f"tasks sent: {(sent1 - sent0) / (t1 - t0):.0f}/s; finished (dashboard's figure):"
          f" {overview['per_second']}/s; live updates received: {frames[0]}")
    print(f"dashboard CPU: {used:.2f} s over {t1 - t0:.0f} s = {100 * used / (t1 - t0):.1f}%"
          " of one core")
    print(f"dashboard RSS: {process.memory_info().rss / 2**20:.0f} MiB")


if __name__ == "__main__":
    main()
