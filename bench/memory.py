"""Memory of a ``conveyor worker -c N`` process tree: RSS and PSS of the supervisor and of each
child, after the workers ran some tasks and went idle.

    python -m bench.memory [--only sqlite,redis,rabbitmq] [--procs 2,3,4] [--tasks 300]

Each point starts the bench's Conveyor worker (:mod:`bench.libs.conveyor_lib`, ``--pool
process``), waits for its children, runs ``--tasks`` no-op tasks through it, waits 1.5 s and
reads every process's RSS (``psutil``) and PSS (``/proc/<pid>/smaps_rollup``). PSS splits a
shared page (the interpreter, shared libraries) between the processes mapping it, so the summed
PSS is what the tree takes from the machine; the summed RSS counts those pages once per process.
Redis keys of the run are deleted by pattern; RabbitMQ runs in a private vhost (rabbitmqctl).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from typing import Any

import psutil

from bench.run import REPO, compile_sources, rabbit_vhost


def pss_mb(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def tree(pid: int) -> list[psutil.Process]:
    root = psutil.Process(pid)
    return [root, *root.children(recursive=True)]


def measure(backend: str, procs: int, tasks: int, env: dict[str, str]) -> dict[str, Any]:
    """One worker tree of ``procs`` children: RSS and PSS in MB, supervisor first."""
    env = {**env, "BENCH_BACKEND": backend, "BENCH_PROCS": str(procs),
           "BENCH_NS": f"mem{uuid.uuid4().hex[:8]}"}
    argv = _in_env(env, "import json; from bench.libs.conveyor_lib import ConveyorAdapter;"
                        "print(json.dumps(ConveyorAdapter().worker_argvs()[0]))")
    worker = subprocess.Popen(json.loads(argv), env=env)
    try:
        deadline = time.monotonic() + 60
        while len(tree(worker.pid)) < procs + 1 and time.monotonic() < deadline:
            time.sleep(0.2)
        _in_env(env, "from bench.libs.conveyor_lib import count;"
                     f"rs = count.map([()] * {tasks}); [r.get(timeout=60) for r in rs[-5:]]")
        time.sleep(1.5)
        found = tree(worker.pid)
        rss = [p.memory_info().rss / 2**20 for p in found]
        pss = [pss_mb(p.pid) for p in found]
        return {"backend": backend, "procs": procs, "rss": rss, "pss": pss}
    finally:
        worker.terminate()
        worker.wait(60)
        if backend != "sqlite":
            _in_env(env, "import redis; from bench import common;"
                         "r = redis.Redis.from_url(common.REDIS_URL);"
                         "[r.delete(k) for k in r.scan_iter(match=f'*{common.NS}*')]")


def _in_env(env: dict[str, str], code: str) -> str:
    done = subprocess.run([sys.executable, "-c", code], env=env, check=True,
                          capture_output=True, text=True)
    return done.stdout.strip()


def line(point: dict[str, Any]) -> str:
    rss, pss = point["rss"], point["pss"]
    children = " ".join(f"{x:.1f}" for x in rss[1:])
    return (f"{point['backend']:<8} -c {point['procs']}  RSS {sum(rss):6.1f} MB"
            f" (supervisor {rss[0]:.1f}, children {children})  PSS {sum(pss):6.1f} MB"
            f" (supervisor {pss[0]:.1f}, child mean {sum(pss[1:]) / max(1, len(pss) - 1):.1f})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", default="sqlite,redis,rabbitmq")
    parser.add_argument("--procs", default="2,3,4")
    parser.add_argument("--tasks", type=int, default=300)
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/15")
    parser.add_argument("--amqp", default="amqp://guest:guest@127.0.0.1:5672/")
    args = parser.parse_args()
    backends = args.only.split(",")
    compile_sources(os.path.join(REPO, "src"))  # as an installed wheel is (see bench.run)
    with tempfile.TemporaryDirectory(prefix="conveyor-mem-") as scratch, \
            rabbit_vhost(args.amqp, f"mem-{uuid.uuid4().hex[:8]}", "rabbitmq" in backends) as amqp:
        env = {**os.environ, "BENCH_DIR": scratch, "BENCH_REDIS": args.redis,
               "PYTHONPATH": os.pathsep.join(filter(None, [os.getcwd(),
                                                           os.environ.get("PYTHONPATH")]))}
        if amqp:
            env["BENCH_AMQP"] = amqp
        for backend in backends:
            for procs in map(int, args.procs.split(",")):
                print(line(measure(backend, procs, args.tasks, env)), flush=True)


if __name__ == "__main__":
    main()
