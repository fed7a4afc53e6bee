"""One scenario of one library on one broker, in this process (the producer), with the
library's workers as child processes. ``bench.run`` starts one driver per scenario, so every
measurement begins from a fresh interpreter, a fresh SQLite file or Redis namespace, and no
leftover workers.

    python -m bench.driver --lib conveyor --scenario e2e --n 20000 --out result.json

The environment must hold the BENCH_* settings of :mod:`bench.common`.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import os
import signal
import statistics
import subprocess
import sys
import threading
import time
import traceback
from typing import Any

import psutil

from bench import common
from bench.adapter import Adapter, NotAvailable
from bench.libs import LIBS, VARIANTS
from bench.report import SCALING

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
POLL = 0.02  # how often the driver looks at the completion counter
SAMPLE = 0.05  # RSS sampling period
PSS_EVERY = 10  # one PSS sample (costlier: reads smaps) per this many RSS samples


# -- worker processes ------------------------------------------------------------------------
class Workers:
    """The library's worker processes, each the leader of its own process group."""

    def __init__(self, argvs: list[list[str]], env: dict[str, str]) -> None:
        self.argvs = argvs
        self.env = {**os.environ, **env, "PYTHONPATH": os.environ.get("PYTHONPATH", REPO),
                    "PYTHONUNBUFFERED": "1"}
        self.procs: list[subprocess.Popen[bytes]] = []
        self.logs: list[str] = []

    def start(self) -> None:
        for i, argv in enumerate(self.argvs):
            path = os.path.join(common.DIR, f"worker-{i}.log")
            self.logs.append(path)
            with open(path, "wb") as log:
                self.procs.append(subprocess.Popen(
                    argv, env=self.env, cwd=REPO, stdout=log, stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL, start_new_session=True))
            with open(os.path.join(common.DIR, "workers.pids"), "a") as f:
                f.write(f"{self.procs[-1].pid}\n")  # bench.run stops them if this driver hangs

    def tree(self) -> list[psutil.Process]:
        out: list[psutil.Process] = []
        for proc in self.procs:
            try:
                root = psutil.Process(proc.pid)
                out.append(root)
                out.extend(root.children(recursive=True))
            except psutil.NoSuchProcess:
                continue
        return out

    def dead(self) -> list[int]:
        return [p.returncode for p in self.procs if p.poll() is not None]  # type: ignore[misc]

    def stop(self, timeout: float = 10.0) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for proc in self.procs:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(max(0.0, deadline - time.monotonic()))
        for proc in self.procs:  # whatever is left of each group this driver started
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(5)

    def log_tail(self, chars: int = 2000) -> str:
        parts = []
        for path in self.logs:
            with contextlib.suppress(OSError), open(path, "rb") as f:
                data = f.read()[-chars:].decode("utf-8", "replace")
                parts.append(f"--- {os.path.basename(path)}\n{data}")
        return "\n".join(parts)


class MemorySampler(threading.Thread):
    """Peak of the summed RSS (and, less often, PSS) of the worker process trees, and the CPU
    time they used (the last reading of each process, so one that exits still counts)."""

    def __init__(self, workers: Workers) -> None:
        super().__init__(daemon=True)
        self.workers = workers
        self.stopped = threading.Event()
        self.peak_rss = 0
        self.peak_pss = 0
        self.peak_procs = 0
        self.samples = 0
        self.cpu: dict[int, float] = {}

    def run(self) -> None:
        while not self.stopped.is_set():
            rss = pss = 0
            procs = self.workers.tree()
            with_pss = self.samples % PSS_EVERY == 0
            for p in procs:
                try:
                    if with_pss:
                        info = p.memory_full_info()
                        rss += info.rss
                        pss += info.pss
                    else:
                        rss += p.memory_info().rss
                    t = p.cpu_times()
                    self.cpu[p.pid] = t.user + t.system
                except (psutil.NoSuchProcess, psutil.AccessDenied):
                    continue
            self.peak_rss = max(self.peak_rss, rss)
            self.peak_pss = max(self.peak_pss, pss)
            self.peak_procs = max(self.peak_procs, len(procs))
            self.samples += 1
            self.stopped.wait(SAMPLE)

    def stop(self) -> None:
        self.stopped.set()
        self.join()


def cpu_seconds(procs: list[psutil.Process]) -> dict[int, float]:
    out = {}
    for p in procs:
        try:
            t = p.cpu_times()
            out[p.pid] = t.user + t.system
        except psutil.NoSuchProcess:
            continue
    return out


# -- Redis hygiene ---------------------------------------------------------------------------
def delete_keys(patterns: list[str]) -> int:
    """Delete this scenario's keys (never FLUSHDB: the server is shared). On RabbitMQ too:
    Conveyor keeps its results there (the queues go with the run's vhost)."""
    if common.BACKEND not in ("redis", "rabbitmq"):
        return 0
    import redis

    client = redis.Redis.from_url(common.REDIS_URL)
    deleted = 0
    for pattern in patterns:
        batch: list[bytes] = []
        for key in client.scan_iter(match=pattern, count=1000):
            batch.append(key)
            if len(batch) >= 1000:
                deleted += client.unlink(*batch)
                batch = []
        if batch:
            deleted += client.unlink(*batch)
    client.close()
    return deleted


def redis_server() -> psutil.Process | None:
    """The Redis server process when it runs on this machine (to read its CPU time)."""
    if common.BACKEND != "redis":
        return None
    import redis

    client = redis.Redis.from_url(common.REDIS_URL)
    try:
        pid = int(client.info("server")["process_id"])
        return psutil.Process(pid)
    except (psutil.Error, KeyError, ValueError):
        return None
    finally:
        client.close()


def cpu_of(proc: psutil.Process | None) -> float:
    if proc is None:
        return 0.0
    try:
        t = proc.cpu_times()
        return t.user + t.system
    except psutil.Error:
        return 0.0


# -- scenarios -------------------------------------------------------------------------------
def wait_for(predicate: Any, timeout: float, workers: Workers | None = None) -> bool:
    deadline = time.perf_counter() + timeout
    while time.perf_counter() < deadline:
        if predicate():
            return True
        if workers is not None and len(workers.dead()) == len(workers.procs):
            raise RuntimeError("every worker process exited:\n" + workers.log_tail())
        time.sleep(POLL)
    return bool(predicate())


def single(ad: Adapter, n: int, timeout: float) -> dict[str, Any]:
    t0 = time.perf_counter()
    ad.send_single(n)
    dt = time.perf_counter() - t0
    return {"n": n, "seconds": dt, "rate": n / dt}


def bulk(ad: Adapter, n: int, timeout: float) -> dict[str, Any]:
    t0 = time.perf_counter()
    try:
        ad.send_bulk(n)
    except NotAvailable:
        return {"n": n, "na": True}
    dt = time.perf_counter() - t0
    return {"n": n, "seconds": dt, "rate": n / dt, "api": ad.bulk_api}


def e2e(ad: Adapter, n: int, timeout: float) -> dict[str, Any]:
    t0 = time.perf_counter()
    ad.prefill(n)
    prefill_s = time.perf_counter() - t0
    workers = Workers(ad.worker_argvs(), ad.worker_env())
    sampler = MemorySampler(workers)
    server = redis_server()
    try:
        server_cpu = cpu_of(server)
        t0 = time.perf_counter()
        workers.start()
        sampler.start()
        finished = wait_for(lambda: common.done_count() >= n, timeout, workers)
        dt = time.perf_counter() - t0
        done = common.done_count()
        server_cpu = cpu_of(server) - server_cpu
        sampler.stop()
        checked = ad.verify(n) if finished else {}
    finally:
        if sampler.is_alive():
            sampler.stop()
        workers.stop()
    out = {"n": n, "done": done, "seconds": dt, "rate": done / dt, "timed_out": not finished,
           "prefill_seconds": prefill_s, "peak_rss_mb": sampler.peak_rss / 2**20,
           "peak_pss_mb": sampler.peak_pss / 2**20, "processes": sampler.peak_procs,
           "rss_samples": sampler.samples, "worker_cpu_seconds": sum(sampler.cpu.values()),
           "cpu_ms_per_task": 1000 * sum(sampler.cpu.values()) / max(done, 1), **checked}
    if server is not None:
        out["redis_cpu_ms_per_task"] = 1000 * server_cpu / max(done, 1)
    if not finished:
        out["log_tail"] = workers.log_tail(600)
    return out


def idle(ad: Adapter, n: int, timeout: float) -> dict[str, Any]:
    """Idle CPU over 5 s, then ``n`` sends 10 ms apart to the idle workers."""
    warm = 20
    workers = Workers(ad.worker_argvs(), ad.worker_env())
    try:
        workers.start()
        for _ in range(warm):  # warm-up tasks: sent=0 marks them (their "latency" is huge)
            ad.send_latency(0.0)
        if not wait_for(lambda: len(common.latencies()) >= warm, 60.0, workers):
            raise RuntimeError("workers did not start within 60 s:\n" + workers.log_tail())
        time.sleep(2.0)
        procs = workers.tree()
        before = cpu_seconds(procs)
        t0 = time.perf_counter()
        time.sleep(5.0)
        span = time.perf_counter() - t0
        after = cpu_seconds(procs)
        used = sum(after[pid] - before[pid] for pid in after if pid in before)
        rss = 0
        for p in workers.tree():
            with contextlib.suppress(psutil.NoSuchProcess):
                rss += p.memory_info().rss

        start = time.perf_counter()
        for i in range(n):
            pause = start + i * 0.010 - time.perf_counter()
            if pause > 0:
                time.sleep(pause)
            ad.send_latency(time.time())
        send_span = time.perf_counter() - start
        got = wait_for(lambda: len(common.latencies()) >= warm + n, timeout, workers)
        values = sorted(v for v in common.latencies() if v < 1e6)
    finally:
        workers.stop()
    out: dict[str, Any] = {
        "idle_cpu_percent": 100.0 * used / span, "idle_rss_mb": rss / 2**20,
        "processes": len(procs), "sent": n, "received": len(values), "complete": got,
        "send_span_seconds": send_span}
    if values:
        out.update({
            "p50_ms": 1000 * percentile(values, 50), "p99_ms": 1000 * percentile(values, 99),
            "max_ms": 1000 * values[-1], "mean_ms": 1000 * statistics.fmean(values)})
    return out


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile of sorted ``values``."""
    rank = max(1, min(len(values), round(q / 100 * len(values) + 0.5)))
    return values[rank - 1]


def workflows(ad: Adapter, n: int, timeout: float) -> dict[str, Any]:
    """A group of ``n`` adds, then a chord over ``n`` adds, sent to running, warmed-up workers;
    each timed from the send until the library's own ``get()`` returned the value (for the
    chord: the callback's). In the ``workflows-trips`` run everything goes through the counting
    proxy (:mod:`bench.roundtrips`) and the round trips of each part are divided by ``n``."""
    if not ad.workflows or common.BACKEND != "redis":
        return {"n": n, "na": True}
    workers = Workers(ad.worker_argvs(), ad.worker_env())
    try:
        workers.start()
        if ad.wait_result(ad.send_group(20), 60.0) != [2 * i for i in range(20)]:
            raise RuntimeError("warm-up group returned wrong values")
        out: dict[str, Any] = {"n": n}
        for part, send, expected in (
                ("group", ad.send_group, [2 * i for i in range(n)]),
                ("chord", ad.send_chord, sum(2 * i for i in range(n)))):
            trips = PROXY.count() if PROXY else 0
            t0 = time.perf_counter()
            handle = send(n)
            out[f"{part}_send_seconds"] = time.perf_counter() - t0
            value = ad.wait_result(handle, timeout)
            out[f"{part}_seconds"] = time.perf_counter() - t0
            out[f"{part}_correct"] = value == expected
            if PROXY:
                out[f"{part}_round_trips_per_member"] = (PROXY.count() - trips) / n
        time.sleep(1.0)  # a second run of the callback would show by now
        out["callback_runs"] = common.callback_count()
    finally:
        workers.stop()
    return out


PROXY: Any = None  # the counting proxy of a workflows-trips run


def through_proxy() -> None:
    """Send every connection of this scenario (driver and workers) through a counting proxy."""
    global PROXY
    from urllib.parse import urlsplit, urlunsplit

    from bench.roundtrips import Proxy

    parts = urlsplit(common.REDIS_URL)
    PROXY = Proxy(parts.hostname or "127.0.0.1", parts.port or 6379)
    port = PROXY.start()
    url = urlunsplit(parts._replace(netloc=f"127.0.0.1:{port}"))
    common.REDIS_URL = os.environ["BENCH_REDIS"] = url


SCENARIOS = {"single": single, "bulk": bulk, "e2e": e2e, "idle": idle,
             "workflows": workflows, "workflows-trips": workflows,
             **{name: e2e for name in SCALING}}


def scale(scenario: str) -> None:
    """A scaling point is an end-to-end run with more worker processes (one queue) or more
    queues (two processes); set before the library module is imported, as it reads them."""
    axis, x = SCALING[scenario]
    os.environ["BENCH_PROCS"] = str(x if axis == "processes" else 2)
    os.environ["BENCH_QUEUES"] = str(x if axis == "queues" else 1)
    # bench.common read them when this driver imported it: set its copies as well
    common.PROCS = int(os.environ["BENCH_PROCS"])
    count = int(os.environ["BENCH_QUEUES"])
    common.QUEUES = [common.QUEUE] if count <= 1 else [f"{common.QUEUE}-{i}"
                                                       for i in range(count)]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--lib", required=True, choices=sorted(LIBS))
    parser.add_argument("--scenario", required=True, choices=sorted(SCENARIOS))
    parser.add_argument("--n", type=int, required=True)
    parser.add_argument("--timeout", type=float, default=90.0)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()

    result: dict[str, Any] = {"lib": args.lib, "backend": common.BACKEND,
                              "scenario": args.scenario}
    ad: Adapter | None = None
    try:
        if args.scenario == "workflows-trips":  # before the import, as the URL is read then
            through_proxy()
        if args.scenario in SCALING:
            scale(args.scenario)
        if args.lib in VARIANTS:  # before the import: the module and its workers read it
            os.environ["BENCH_VARIANT"] = VARIANTS[args.lib]
        module = importlib.import_module(LIBS[args.lib][0])
        if "conveyor" in sys.modules:
            result["conveyor_from"] = os.path.dirname(sys.modules["conveyor"].__file__ or "")
        ad = module.Adapter_()
        result.update(SCENARIOS[args.scenario](ad, args.n, args.timeout))
        result["ok"] = True
        result["stores"] = ad.stores
    except Exception as exc:
        result["ok"] = False
        result["error"] = f"{type(exc).__name__}: {exc}"
        result["traceback"] = traceback.format_exc()
    finally:
        if ad is not None:
            with contextlib.suppress(Exception):
                ad.close()
        patterns = [f"*{common.NS}*", *(ad.extra_key_patterns if ad else ())]
        try:
            result["keys_deleted"] = delete_keys(patterns)
        except Exception as exc:
            result["cleanup_error"] = str(exc)
    with open(args.out, "w") as f:
        json.dump(result, f, indent=1)
    sys.exit(0)


if __name__ == "__main__":
    main()
