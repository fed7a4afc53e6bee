"""Benchmark Conveyor against peer task queues on the same broker, in the same run.

    python -m bench.run [--only sqlite,redis,rabbitmq] [--libs conveyor,huey,...] [--n 20000]

This process only orchestrates (standard library only, so any Python 3.11 runs it). Each
scenario of each library runs in a fresh driver process (:mod:`bench.driver`) under a bench
interpreter: virtualenvs apart from the project's, because the peers' pins clash with it and
with each other (Celery's kombu needs redis-py >= 6.1, arq pins it below 6, taskiq-redis 1.2
needs 8, Conveyor allows < 8). ``.venv-bench`` (Conveyor, Huey, Celery, Dramatiq, RQ),
``.venv-bench-arq`` and ``.venv-bench-taskiq`` are created from ``bench/requirements*.txt`` on
first use.
A run is ``--rounds`` interleaved rounds (default 3): each round runs every scenario once, the
libraries of a scenario back to back, so the figures being compared were measured close
together on this shared machine; the report gives each figure's median and min-max.

Results go to ``bench/results/<timestamp>.json``; the tables with Conveyor ÷ peer ratios, the
scaling table and the issue's targets (ratio, met / missed) are printed at the end
(:mod:`bench.report`), and the scaling plot is drawn (:mod:`bench.plot`).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from typing import Any
from urllib.parse import urlsplit

if __package__ in (None, ""):  # run as a script: make ``bench`` importable
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from bench.report import SCALING, fmt, report, scaling, targets

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCH = os.path.join(REPO, "bench")

#: venv name -> (requirements file, install Conveyor editable into it)
VENVS: dict[str, tuple[str, bool]] = {
    ".venv-bench": ("requirements.txt", True),
    ".venv-bench-arq": ("requirements-arq.txt", False),
    ".venv-bench-taskiq": ("requirements-taskiq.txt", False),
}
# Same registry as bench.libs.LIBS, repeated here so this process imports no library:
# name -> (backends, venv)
LIBS: dict[str, tuple[tuple[str, ...], str]] = {
    "conveyor": (("sqlite", "redis", "rabbitmq"), ".venv-bench"),
    "raw": (("sqlite", "redis"), ".venv-bench"),  # the floors: a plain loop on the broker
    "huey": (("sqlite", "redis"), ".venv-bench"),
    "celery": (("redis", "rabbitmq"), ".venv-bench"),
    "dramatiq": (("redis", "rabbitmq"), ".venv-bench"),
    "arq": (("redis",), ".venv-bench-arq"),
    "rq": (("redis",), ".venv-bench"),
    "taskiq": (("redis",), ".venv-bench-taskiq"),
    # opt-in variants of Conveyor (see bench/libs/conveyor_lib.py)
    "conveyor-async": (("sqlite", "redis", "rabbitmq"), ".venv-bench"),
    "conveyor-noresult": (("sqlite", "redis", "rabbitmq"), ".venv-bench"),
    "conveyor-prefetch": (("sqlite", "redis", "rabbitmq"), ".venv-bench"),
    "conveyor-noevents": (("sqlite", "redis", "rabbitmq"), ".venv-bench"),
}
#: The libraries with groups and chords (the workflows scenarios, Redis only).
WORKFLOW_LIBS = ("conveyor", "celery")
DEFAULT_LIBS = ("conveyor", "conveyor-noresult", "conveyor-noevents", "raw", "huey", "celery",
                "dramatiq", "arq", "rq", "taskiq")
#: The libraries of the scaling scenarios (the raw floor on the processes axis only).
SCALING_LIBS = {"conveyor": tuple(SCALING), "raw": tuple(s for s in SCALING if "-p" in s)}
SCENARIOS = ("single", "bulk", "e2e", "idle", *SCALING, "workflows", "workflows-trips")
DEFAULT_SCENARIOS = "single,bulk,e2e,idle,scaling"


#: The brokers of a run: name -> what tells whether its server answers (and its version), or
#: None for a broker without a server. A new stack (RabbitMQ) adds itself here, to LIBS with
#: the backend name, to bench/libs (its adapters read BENCH_BACKEND), and to bench.report's
#: TARGETS; nothing else in the orchestrator names a broker.
BACKENDS: dict[str, Any] = {"sqlite": None, "redis": lambda args: redis_info(args.redis),
                            "rabbitmq": lambda args: rabbit_info(args.amqp)}
PACKAGES = ("conveyor-tasks", "huey", "celery", "kombu", "dramatiq", "arq", "rq", "taskiq",
            "taskiq-redis", "redis", "hiredis", "aio-pika", "amqp", "pika", "psutil")


# -- the bench interpreter -------------------------------------------------------------------
def bench_python(venv: str, root: str) -> str:
    """The interpreter of bench venv ``venv`` under ``root``; created when it is missing."""
    requirements, with_conveyor = VENVS[venv]
    path = os.path.join(root, venv)
    exe = os.path.join(path, "bin", "python")
    if os.path.exists(exe):
        return exe
    print(f"creating {path} from bench/{requirements}", flush=True)
    subprocess.run([sys.executable, "-m", "venv", path], check=True)
    pip = [exe, "-m", "pip", "install", "-q"]
    subprocess.run([*pip, "--upgrade", "pip"], check=True)
    subprocess.run([*pip, "-r", os.path.join(BENCH, requirements)], check=True)
    if with_conveyor:
        subprocess.run([*pip, "--no-deps", "-e", REPO], check=True)
    return exe


def versions(python: str) -> dict[str, str]:
    code = ("import importlib.metadata as m, json, sys\n"
            f"names = {list(PACKAGES)!r}\n"
            "out = {}\n"
            "for n in names:\n"
            "    try: out[n] = m.version(n)\n"
            "    except m.PackageNotFoundError: pass\n"
            "out['python'] = sys.version.split()[0]\n"
            "print(json.dumps(out))\n")
    done = subprocess.run([python, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(done.stdout)  # type: ignore[no-any-return]


def redis_info(url: str) -> dict[str, str] | None:
    """Version of the Redis server, or None when it cannot be reached."""
    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 6379),
                                      timeout=2) as s:
            s.sendall(b"INFO server\r\n")
            data = s.recv(65536)
            head, _, body = data.partition(b"\r\n")
            if not head.startswith(b"$"):
                return {"reply": head.decode("utf-8", "replace")}
            while len(body) < int(head[1:]):
                chunk = s.recv(65536)
                if not chunk:
                    break
                body += chunk
    except (OSError, ValueError):
        return None
    info = {}
    for line in body.decode("utf-8", "replace").splitlines():
        k, _, v = line.partition(":")
        if k in ("redis_version", "multiplexing_api", "io_threads_active"):
            info[k] = v
    return info


def rabbit_info(url: str) -> dict[str, str] | None:
    """The RabbitMQ node's version, or None when it cannot be reached."""
    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 5672),
                                      timeout=2):
            pass
    except OSError:
        return None
    done = subprocess.run(["rabbitmqctl", "-q", "version"], capture_output=True, text=True,
                          check=False) if shutil.which("rabbitmqctl") else None
    return {"version": done.stdout.strip() if done and done.returncode == 0 else "unknown"}


@contextlib.contextmanager
def rabbit_vhost(url: str, name: str, wanted: bool) -> Any:
    """A private vhost for the run on the local node (``rabbitmqctl``), deleted afterwards;
    yields the run's ``amqp://`` URL on it (or None when RabbitMQ is not part of the run)."""
    if not wanted:
        yield None
        return
    def ctl(*args: str) -> None:
        subprocess.run(["rabbitmqctl", "-q", *args], check=True, capture_output=True,
                       timeout=60)

    ctl("add_vhost", name)
    try:
        ctl("set_permissions", "-p", name, urlsplit(url).username or "guest", ".*", ".*", ".*")
        yield urlsplit(url)._replace(path=f"/{name}").geturl()
    finally:
        ctl("delete_vhost", name)


# -- running one driver ----------------------------------------------------------------------
# -- which Conveyor ----------------------------------------------------------------------------
def git(*args: str) -> str:
    done = subprocess.run(["git", "-C", REPO, *args], capture_output=True, text=True)
    return done.stdout.strip() if done.returncode == 0 else ""


def conveyor_source(rev: str | None, scratch: str) -> tuple[str | None, dict[str, Any]]:
    """Where drivers and workers import Conveyor from, and how to name it in the results.

    By default the working tree (the bench venv's editable install). With ``rev``, that commit's
    ``src/`` is exported to ``scratch`` and put first on PYTHONPATH: other people's uncommitted
    edits in a shared tree then do not leak into the figures."""
    if rev is None:
        dirty = bool(git("status", "--porcelain", "--", "src"))
        compile_sources(os.path.join(REPO, "src"))
        return None, {"source": "working tree", "commit": git("rev-parse", "--short", "HEAD"),
                      "uncommitted_changes_in_src": dirty}
    sha = git("rev-parse", "--verify", f"{rev}^{{commit}}")
    if not sha:
        raise SystemExit(f"unknown revision {rev!r}")
    archive = subprocess.run(["git", "-C", REPO, "archive", sha, "src"], capture_output=True,
                             check=True).stdout
    subprocess.run(["tar", "-x", "-C", scratch], input=archive, check=True)
    compile_sources(os.path.join(scratch, "src"))
    return os.path.join(scratch, "src"), {"source": "commit", "commit": sha[:12],
                                          "subject": git("log", "-1", "--format=%s", sha)}


def compile_sources(path: str) -> None:
    """Byte-compile ``path`` (and the bench's own modules), as installing a wheel does for the
    peers in the bench venvs. Without it, where ``PYTHONDONTWRITEBYTECODE`` is set, every
    process of a run (driver, supervisor, each worker) compiles Conveyor from source at start:
    about 5 MB more RSS per process and that much more start-up CPU, all inside the timed and
    sampled part of a scenario. The bench venvs share this interpreter's version."""
    subprocess.run([sys.executable, "-m", "compileall", "-q", path, BENCH], check=True,
                   stdout=subprocess.DEVNULL)


def run_driver(python: str, lib: str, backend: str, scenario: str, n: int, *, run_id: str,
               redis_url: str, amqp_url: str | None, wait: float, src: str | None
               ) -> dict[str, Any]:
    workdir = tempfile.mkdtemp(prefix=f"cvb-{lib}-{scenario}-")
    out = os.path.join(workdir, "result.json")
    ns = f"cvb-{run_id}-{backend[0]}-{lib}-{scenario}"
    env = {**os.environ, "BENCH_BACKEND": backend, "BENCH_DIR": workdir, "BENCH_NS": ns,
           "BENCH_REDIS": redis_url, "BENCH_AMQP": amqp_url or "", "BENCH_QUEUE": f"{ns}-q",
           "PYTHONPATH": REPO if src is None else f"{src}{os.pathsep}{REPO}"}
    env.pop("CONVEYOR_BROKER_URL", None)
    argv = [python, "-m", "bench.driver", "--lib", lib, "--scenario", scenario, "--n", str(n),
            "--timeout", str(wait), "--out", out]
    started = time.perf_counter()
    proc = subprocess.Popen(argv, env=env, cwd=REPO, start_new_session=True)
    try:
        proc.wait(timeout=wait + 90)
        if os.path.exists(out):
            with open(out) as f:
                result: dict[str, Any] = json.load(f)
        else:
            result = {"lib": lib, "backend": backend, "scenario": scenario, "ok": False,
                      "error": f"driver exited with {proc.returncode} and no result"}
    except subprocess.TimeoutExpired:
        result = {"lib": lib, "backend": backend, "scenario": scenario, "ok": False,
                  "error": f"driver did not finish within {wait + 90:.0f} s"}
    finally:
        _end(proc, workdir)
        shutil.rmtree(workdir, ignore_errors=True)
    result["wall_seconds"] = time.perf_counter() - started
    return result


def _end(proc: subprocess.Popen[bytes], workdir: str) -> None:
    """Stop a driver that overran, and any worker groups it started (their PIDs are logged)."""
    groups = [proc.pid]
    with contextlib.suppress(OSError), open(os.path.join(workdir, "workers.pids")) as f:
        groups += [int(line) for line in f if line.strip()]
    for pgid in groups:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(5)


# -- report ----------------------------------------------------------------------------------
def workflow_table(results: list[dict[str, Any]]) -> str:
    """Group and chord of the workflows scenarios: seconds (direct), round trips (proxied)."""
    rows = ["\n### workflows (redis)\n", "| library | group s (sending) | chord: s to callback"
            " (sending) | callback runs | group trips/member | chord trips/member |"
            " s through proxy |", "|---|---|---|---|---|---|---|"]
    found = False
    for lib in WORKFLOW_LIBS:
        timed = next((r for r in results if (r["lib"], r["scenario"]) == (lib, "workflows")
                      and r.get("ok") and not r.get("na")), None)
        trips = next((r for r in results if (r["lib"], r["scenario"]) == (lib,
                      "workflows-trips") and r.get("ok") and not r.get("na")), None)
        if timed is None and trips is None:
            continue
        found = True
        t, c = timed or {}, trips or {}
        rows.append(f"| {lib} | {fmt(t.get('group_seconds'))} ({fmt(t.get('group_send_seconds'))})"
                    f" | {fmt(t.get('chord_seconds'))} ({fmt(t.get('chord_send_seconds'))})"
                    f" | {t.get('callback_runs', '-')} |"
                    f" {fmt(c.get('group_round_trips_per_member'))} |"
                    f" {fmt(c.get('chord_round_trips_per_member'))} |"
                    f" {fmt(c.get('group_seconds'))} + {fmt(c.get('chord_seconds'))} |")
    return "\n".join(rows) if found else ""


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", help="comma-separated brokers of the run (default: every"
                                       f" one that answers of {', '.join(BACKENDS)})")
    parser.add_argument("--libs", default=",".join(DEFAULT_LIBS),
                        help="comma-separated libraries (default: Conveyor with results, with"
                             " ignore_result and with events off, the raw floor and every"
                             " peer); conveyor-async and conveyor-prefetch only when named")
    parser.add_argument("--scenarios", default=DEFAULT_SCENARIOS,
                        help="comma-separated scenarios: single,bulk,e2e,idle, scaling (= the"
                             " scale-p1..p8 and scale-q1..q16 points), workflows,"
                             " workflows-trips (the last two on Redis, Conveyor and Celery);"
                             f" default {DEFAULT_SCENARIOS}")
    parser.add_argument("--rounds", type=int, default=3,
                        help="interleaved rounds: every scenario of every library once per"
                             " round; figures are medians with min-max (default 3)")
    parser.add_argument("--n", type=int, default=20_000,
                        help="tasks for bulk enqueue and end to end (default 20000); single"
                             " enqueue uses n/10, scaling points n/2")
    parser.add_argument("--single-n", type=int, default=None)
    parser.add_argument("--latency-n", type=int, default=200)
    parser.add_argument("--workflow-n", type=int, default=10_000,
                        help="members of the group and of the chord (workflows scenarios)")
    parser.add_argument("--wait", type=float, default=90.0,
                        help="seconds a scenario may wait for its workers (default 90)")
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/15",
                        help="Redis URL with a private db (keys are deleted after each run)")
    parser.add_argument("--amqp", default="amqp://guest:guest@127.0.0.1:5672/",
                        help="RabbitMQ on this machine; the run makes a private vhost on it"
                             " (rabbitmqctl) and deletes it afterwards")
    parser.add_argument("--venv-root", default=REPO,
                        help="where the bench venvs live (default: the repository)")
    parser.add_argument("--python", default=None,
                        help="one interpreter for every library (default: the bench venvs)")
    parser.add_argument("--out", default=None, help="result file (default bench/results/…)")
    parser.add_argument("--plot", default=os.path.join(REPO, "docs", "images", "scaling.svg"),
                        help="where the scaling plot goes ('' for none)")
    parser.add_argument("--conveyor-rev", default=None, metavar="REV",
                        help="benchmark Conveyor as of this commit (e.g. HEAD) instead of the"
                             " working tree")
    args = parser.parse_args()
    args.only_list = [x.strip() for x in (args.only or "").split(",") if x.strip()]
    if any(x not in BACKENDS for x in args.only_list):
        parser.error(f"--only: brokers are {', '.join(BACKENDS)}")
    args.lib_list = [x.strip() for x in args.libs.split(",") if x.strip()]
    unknown = [x for x in args.lib_list if x not in LIBS]
    if unknown:
        parser.error(f"unknown libraries: {', '.join(unknown)} (known: {', '.join(LIBS)})")
    names = [x.strip() for x in args.scenarios.split(",") if x.strip()]
    args.scenario_list = [y for x in names for y in (SCALING if x == "scaling" else [x])]
    bad = [x for x in args.scenario_list if x not in SCENARIOS]
    if bad:
        parser.error(f"unknown scenarios: {', '.join(bad)}")
    return args


def plan(libs: list[str], backends: list[str], scenarios: list[str]) -> list[tuple[str, str,
                                                                               str]]:
    """One round: (backend, scenario, lib), each scenario's libraries back to back."""
    steps = []
    for backend in backends:
        for scenario in scenarios:
            for lib in libs:
                if backend not in LIBS[lib][0]:
                    continue
                if scenario.startswith("workflows") and (backend != "redis"
                                                         or lib not in WORKFLOW_LIBS):
                    continue
                if scenario in SCALING and scenario not in SCALING_LIBS.get(lib, ()):
                    continue
                steps.append((backend, scenario, lib))
    return steps


def reachable(args: argparse.Namespace) -> tuple[list[str], dict[str, Any]]:
    """The brokers of this run whose servers answer, and what each said about itself."""
    backends, info = [], {}
    for name in args.only_list or list(BACKENDS):
        check = BACKENDS[name]
        found = check(args) if check is not None else {}
        if found is None:
            print(f"{name} is unreachable: skipping it", flush=True)
            continue
        backends.append(name)
        info[name] = found
    return backends, info


def main() -> None:
    args = parse_args()
    libs = args.lib_list
    pythons = {lib: args.python or bench_python(LIBS[lib][1], args.venv_root) for lib in libs}
    backends, servers = reachable(args)
    single_n = args.single_n or max(1, args.n // 10)
    counts = {"single": single_n, "bulk": args.n, "e2e": args.n, "idle": args.latency_n,
              "workflows": args.workflow_n, "workflows-trips": args.workflow_n,
              **{s: max(1, args.n // 2) for s in SCALING}}
    scratch = tempfile.mkdtemp(prefix="cvb-src-")
    src, conveyor = conveyor_source(args.conveyor_rev, scratch)
    run_id = datetime.datetime.now().strftime("%H%M%S")
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    doc: dict[str, Any] = {
        "started": datetime.datetime.now().isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                    "load_avg_at_start": os.getloadavg()},
        "versions": {py: versions(py) for py in sorted(set(pythons.values()))},
        "redis_server": servers.get("redis"), "servers": servers,
        "conveyor": conveyor, "args": {k: v for k, v in vars(args).items()},
        "counts": counts, "results": []}
    began = time.perf_counter()
    steps = plan(libs, backends, args.scenario_list)
    with rabbit_vhost(args.amqp, f"cvb-{stamp}", "rabbitmq" in backends) as amqp_url:
        for round_no in range(1, args.rounds + 1):
            for backend, scenario, lib in steps:
                r = run_driver(pythons[lib], lib, backend, scenario, counts[scenario],
                               run_id=f"{run_id}{round_no}", redis_url=args.redis,
                               amqp_url=amqp_url, wait=args.wait, src=src)
                r["round"] = round_no
                doc["results"].append(r)
                print(f"[{time.perf_counter() - began:6.0f}s] r{round_no} {backend:8}"
                      f" {scenario:9} {lib:17} {_summary(r)}", flush=True)
    shutil.rmtree(scratch, ignore_errors=True)
    finish(doc, args, stamp, began, pythons)


def finish(doc: dict[str, Any], args: argparse.Namespace, stamp: str, began: float,
           pythons: dict[str, str]) -> None:
    """Judge the targets, save the results, draw the scaling plot, print the report."""
    doc["seconds"] = time.perf_counter() - began
    doc["targets"] = targets(doc["results"])
    doc["scaling"] = scaling(doc["results"])
    out = args.out or os.path.join(BENCH, "results", f"{stamp}.json")
    os.makedirs(os.path.dirname(out), exist_ok=True)
    with open(out, "w") as f:
        json.dump(doc, f, indent=1)
    if args.plot and doc["scaling"]:
        python = pythons.get("conveyor") or next(iter(pythons.values()))
        subprocess.run([python, "-m", "bench.plot", out, args.plot], cwd=REPO, check=False)
    print(f"Conveyor: {doc['conveyor']}")
    print(report(doc, workflow_table))
    print(f"\nwrote {out} ({doc['seconds']:.0f} s)")


def _summary(r: dict[str, Any]) -> str:
    if not r.get("ok"):
        return "ERROR " + str(r.get("error"))[:200]
    if r.get("na"):
        return "n/a"
    s = r["scenario"]
    if s in ("single", "bulk"):
        return f"{r['rate']:,.0f}/s"
    if s == "e2e" or s in SCALING:
        extra = " TIMED OUT" if r.get("timed_out") else ""
        return (f"{r['rate']:,.0f}/s ({r['done']}/{r['n']} in {r['seconds']:.1f}s), peak RSS"
                f" {r['peak_rss_mb']:.0f} MB, PSS {r['peak_pss_mb']:.0f} MB{extra}")
    if s.startswith("workflows"):
        trips = (f", round trips per member: group {r['group_round_trips_per_member']:.2f},"
                 f" chord {r['chord_round_trips_per_member']:.2f}"
                 if "chord_round_trips_per_member" in r else "")
        return (f"group of {r['n']:,} in {r['group_seconds']:.2f}s, chord callback after"
                f" {r['chord_seconds']:.2f}s (ran {r['callback_runs']}x){trips}")
    if s == "idle":
        lat = (f"p50 {r['p50_ms']:.2f} ms p99 {r['p99_ms']:.2f} ms" if "p50_ms" in r
               else "no latencies")
        return f"{lat}, idle CPU {r['idle_cpu_percent']:.2f}%, {r['received']}/{r['sent']}"
    return ""


if __name__ == "__main__":
    main()
