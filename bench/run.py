"""Benchmark Conveyor against peer task queues on the same broker, in the same run.

    python -m bench.run [--only sqlite|redis] [--libs conveyor,huey,...] [--n 20000]

This process only orchestrates (standard library only, so any Python 3.11 runs it). Each
scenario of each library runs in a fresh driver process (:mod:`bench.driver`) under a bench
interpreter: virtualenvs apart from the project's, because the peers' pins clash with it and
with each other (Celery's kombu needs redis-py >= 6.1, arq pins it below 6, taskiq-redis 1.2
needs 8, Conveyor allows < 8). ``.venv-bench`` (Conveyor, Huey, Celery, Dramatiq, RQ),
``.venv-bench-arq`` and ``.venv-bench-taskiq`` are created from ``bench/requirements*.txt`` on
first use.
Scenarios run one after another, each library back to back within a scenario, so that the
figures being compared were measured close together on this shared machine.

Results go to ``bench/results/<timestamp>.json``; a table with Conveyor ÷ peer ratios and the
targets (met / missed) is printed at the end.
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
    "conveyor": (("sqlite", "redis"), ".venv-bench"),
    "huey": (("sqlite", "redis"), ".venv-bench"),
    "celery": (("redis",), ".venv-bench"),
    "dramatiq": (("redis",), ".venv-bench"),
    "arq": (("redis",), ".venv-bench-arq"),
    "rq": (("redis",), ".venv-bench"),
    "taskiq": (("redis",), ".venv-bench-taskiq"),
    # opt-in variants of Conveyor (see bench/libs/conveyor_lib.py)
    "conveyor-async": (("sqlite", "redis"), ".venv-bench"),
    "conveyor-noresult": (("sqlite", "redis"), ".venv-bench"),
    "conveyor-prefetch": (("sqlite", "redis"), ".venv-bench"),
    "conveyor-noevents": (("sqlite", "redis"), ".venv-bench"),
}
#: The libraries with groups and chords (the workflows scenarios, Redis only).
WORKFLOW_LIBS = ("conveyor", "celery")
DEFAULT_LIBS = ("conveyor", "huey", "celery", "dramatiq", "arq", "rq", "taskiq")
SCENARIOS = ("single", "bulk", "e2e", "idle", "workflows", "workflows-trips")
PACKAGES = ("conveyor-tasks", "huey", "celery", "kombu", "dramatiq", "arq", "rq", "taskiq",
            "taskiq-redis", "redis", "hiredis", "psutil")


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
        return None, {"source": "working tree", "commit": git("rev-parse", "--short", "HEAD"),
                      "uncommitted_changes_in_src": dirty}
    sha = git("rev-parse", "--verify", f"{rev}^{{commit}}")
    if not sha:
        raise SystemExit(f"unknown revision {rev!r}")
    archive = subprocess.run(["git", "-C", REPO, "archive", sha, "src"], capture_output=True,
                             check=True).stdout
    subprocess.run(["tar", "-x", "-C", scratch], input=archive, check=True)
    return os.path.join(scratch, "src"), {"source": "commit", "commit": sha[:12],
                                          "subject": git("log", "-1", "--format=%s", sha)}


def run_driver(python: str, lib: str, backend: str, scenario: str, n: int, *, run_id: str,
               redis_url: str, wait: float, src: str | None) -> dict[str, Any]:
    workdir = tempfile.mkdtemp(prefix=f"cvb-{lib}-{scenario}-")
    out = os.path.join(workdir, "result.json")
    ns = f"cvb-{run_id}-{backend[0]}-{lib}-{scenario}"
    env = {**os.environ, "BENCH_BACKEND": backend, "BENCH_DIR": workdir, "BENCH_NS": ns,
           "BENCH_REDIS": redis_url, "BENCH_QUEUE": f"{ns}-q",
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
COLUMNS = [  # (title, scenario, field, higher is better)
    ("single enqueue /s", "single", "rate", True),
    ("bulk enqueue /s", "bulk", "rate", True),
    ("e2e tasks/s", "e2e", "rate", True),
    ("worker CPU ms/task", "e2e", "cpu_ms_per_task", False),
    ("Redis CPU ms/task", "e2e", "redis_cpu_ms_per_task", False),
    ("idle p50 ms", "idle", "p50_ms", False),
    ("idle p99 ms", "idle", "p99_ms", False),
    ("idle CPU %", "idle", "idle_cpu_percent", False),
    ("peak RSS MB", "e2e", "peak_rss_mb", False),
    ("peak PSS MB", "e2e", "peak_pss_mb", False),
]


def value(results: list[dict[str, Any]], backend: str, lib: str, scenario: str,
          field: str) -> float | str | None:
    for r in results:
        if (r["backend"], r["lib"], r["scenario"]) == (backend, lib, scenario):
            if not r.get("ok"):
                return "error"
            if r.get("na"):
                return "n/a"
            v = r.get(field)
            if scenario == "e2e" and field == "rate" and r.get("timed_out"):
                return f"{v:.0f}*" if isinstance(v, float) else v
            return v if isinstance(v, int | float) else None
    return None


def fmt(v: float | str | None) -> str:
    if v is None:
        return "-"
    if isinstance(v, str):
        return v
    if v >= 100:
        return f"{v:,.0f}"
    if v >= 10:
        return f"{v:.1f}"
    return f"{v:.2f}"


def table(results: list[dict[str, Any]], backend: str, libs: list[str]) -> str:
    """A markdown table: one row per library, each peer cell with Conveyor ÷ peer."""
    present = [lib for lib in libs if any(r["backend"] == backend and r["lib"] == lib
                                          for r in results)]
    columns = [c for c in COLUMNS if backend == "redis" or not c[2].startswith("redis")]
    lines = ["| library | " + " | ".join(c[0] for c in columns) + " |",
             "|---" * (len(columns) + 1) + "|"]
    for lib in present:
        cells = []
        for _, scenario, field, _ in columns:
            v = value(results, backend, lib, scenario, field)
            ours = value(results, backend, "conveyor", scenario, field)
            cell = fmt(v)
            if (lib != "conveyor" and isinstance(v, int | float) and v
                    and isinstance(ours, int | float)):
                cell += f" ({ours / v:.2f}x)"
            cells.append(cell)
        lines.append(f"| {lib} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def targets(results: list[dict[str, Any]], libs: list[str]) -> list[dict[str, Any]]:
    """The issue's targets, judged on this run's figures."""
    out: list[dict[str, Any]] = []

    def num(backend: str, lib: str, scenario: str, field: str) -> float | None:
        v = value(results, backend, lib, scenario, field)
        return v if isinstance(v, int | float) else None

    def add(name: str, ours: float | None, goal: float | None, higher: bool, note: str) -> None:
        if ours is None or goal is None:
            out.append({"target": name, "status": "not measured", "note": note})
            return
        met = ours >= goal if higher else ours <= goal
        out.append({"target": name, "ours": ours, "goal": goal,
                    "status": "met" if met else "missed", "note": note})

    def best(backend: str, scenario: str, field: str) -> tuple[float | None, str]:
        found = [(num(backend, lib, scenario, field), lib) for lib in libs if lib != "conveyor"]
        found = [f for f in found if f[0] is not None]
        return max(found) if found else (None, "")  # type: ignore[return-value, type-var]

    huey = num("sqlite", "huey", "e2e", "rate")
    add("sqlite: e2e throughput >= SqliteHuey", num("sqlite", "conveyor", "e2e", "rate"),
        huey, True, "tasks/s")
    add("sqlite: idle p99 < 5 ms", num("sqlite", "conveyor", "idle", "p99_ms"), 5.0, False, "ms")
    add("sqlite: idle worker CPU < 1%", num("sqlite", "conveyor", "idle", "idle_cpu_percent"),
        1.0, False, "% of one core")
    add("sqlite: worker RSS < 70 MB", num("sqlite", "conveyor", "e2e", "peak_rss_mb"), 70.0,
        False, "MB, supervisor + 2 processes")
    fastest, who = best("redis", "e2e", "rate")
    add("redis: e2e throughput >= 1.5x fastest peer", num("redis", "conveyor", "e2e", "rate"),
        None if fastest is None else 1.5 * fastest, True, f"tasks/s; fastest peer {who}")
    fastest, who = best("redis", "single", "rate")
    add("redis: single enqueue >= fastest peer", num("redis", "conveyor", "single", "rate"),
        fastest, True, f"/s; fastest peer {who}")
    add("redis: bulk enqueue >= 30,000/s", num("redis", "conveyor", "bulk", "rate"), 30000.0,
        True, "/s")
    add("redis: idle p99 <= 2 ms", num("redis", "conveyor", "idle", "p99_ms"), 2.0, False, "ms")
    add("redis: worker RSS <= 70 MB", num("redis", "conveyor", "e2e", "peak_rss_mb"), 70.0,
        False, "MB, supervisor + 2 processes")
    return out


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


def report(doc: dict[str, Any], libs: list[str]) -> str:
    results = doc["results"]
    parts = []
    for backend in ("sqlite", "redis"):
        if any(r["backend"] == backend for r in results):
            parts.append(f"\n### {backend}\n\n" + table(results, backend, libs))
    parts.append("\n(x) = Conveyor ÷ peer: above 1 is better for rates, below 1 is better for"
                 " ms, CPU and MB. * = timed out before all tasks ran (rate of those done).")
    parts.append(workflow_table(results))
    lines = ["\n### targets\n", "| target | Conveyor | goal | status |", "|---|---|---|---|"]
    for t in doc["targets"]:
        if t["status"] == "not measured":
            if any(r["backend"] == t["target"].split(":")[0] for r in results):
                lines.append(f"| {t['target']} | - | - | not measured |")
            continue
        lines.append(f"| {t['target']} | {fmt(t['ours'])} | {fmt(t['goal'])} | {t['status']}"
                     f" ({t['note']}) |")
    parts.append("\n".join(lines))
    errors = [r for r in results if not r.get("ok")]
    for r in errors:
        parts.append(f"\n{r['backend']}/{r['lib']}/{r['scenario']}: {r.get('error')}")
    return "\n".join(parts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", choices=("sqlite", "redis"), help="one broker only")
    parser.add_argument("--libs", default=",".join(DEFAULT_LIBS),
                        help="comma-separated libraries (default: all peers; the variants"
                             " conveyor-async, conveyor-noresult, conveyor-prefetch and"
                             " conveyor-noevents only"
                             " when named)")
    parser.add_argument("--scenarios", default=",".join(SCENARIOS),
                        help="comma-separated scenarios: single,bulk,e2e,idle,workflows,"
                             "workflows-trips (the last two on Redis, Conveyor and Celery)")
    parser.add_argument("--n", type=int, default=20_000,
                        help="tasks for bulk enqueue and end to end (default 20000); single"
                             " enqueue uses n/10")
    parser.add_argument("--single-n", type=int, default=None)
    parser.add_argument("--latency-n", type=int, default=200)
    parser.add_argument("--workflow-n", type=int, default=10_000,
                        help="members of the group and of the chord (workflows scenarios)")
    parser.add_argument("--wait", type=float, default=90.0,
                        help="seconds a scenario may wait for its workers (default 90)")
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/15",
                        help="Redis URL with a private db (keys are deleted after each run)")
    parser.add_argument("--venv-root", default=REPO,
                        help="where the bench venvs live (default: the repository)")
    parser.add_argument("--python", default=None,
                        help="one interpreter for every library (default: the bench venvs)")
    parser.add_argument("--out", default=None, help="result file (default bench/results/…)")
    parser.add_argument("--conveyor-rev", default=None, metavar="REV",
                        help="benchmark Conveyor as of this commit (e.g. HEAD) instead of the"
                             " working tree")
    args = parser.parse_args()

    libs = [x.strip() for x in args.libs.split(",") if x.strip()]
    unknown = [x for x in libs if x not in LIBS]
    if unknown:
        parser.error(f"unknown libraries: {', '.join(unknown)} (known: {', '.join(LIBS)})")
    scenarios = [x.strip() for x in args.scenarios.split(",") if x.strip()]
    backends = [args.only] if args.only else ["sqlite", "redis"]
    pythons = {lib: args.python or bench_python(LIBS[lib][1], args.venv_root) for lib in libs}
    redis = redis_info(args.redis) if "redis" in backends else None
    if "redis" in backends and redis is None:
        print(f"Redis at {args.redis} is unreachable: skipping the Redis run", flush=True)
        backends.remove("redis")
    single_n = args.single_n or max(1, args.n // 10)
    counts = {"single": single_n, "bulk": args.n, "e2e": args.n, "idle": args.latency_n,
              "workflows": args.workflow_n, "workflows-trips": args.workflow_n}

    scratch = tempfile.mkdtemp(prefix="cvb-src-")
    src, conveyor = conveyor_source(args.conveyor_rev, scratch)
    run_id = datetime.datetime.now().strftime("%H%M%S")
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    doc: dict[str, Any] = {
        "started": datetime.datetime.now().isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                    "load_avg_at_start": os.getloadavg()},
        "versions": {py: versions(py) for py in sorted(set(pythons.values()))},
        "redis_server": redis,
        "conveyor": conveyor, "args": vars(args), "counts": counts, "results": []}
    began = time.perf_counter()
    for backend in backends:
        for scenario in scenarios:
            for lib in libs:
                if backend not in LIBS[lib][0]:
                    continue
                if scenario.startswith("workflows") and (backend != "redis"
                                                         or lib not in WORKFLOW_LIBS):
                    continue
                r = run_driver(pythons[lib], lib, backend, scenario, counts[scenario],
                               run_id=run_id, redis_url=args.redis, wait=args.wait, src=src)
                doc["results"].append(r)
                print(f"[{time.perf_counter() - began:6.0f}s] {backend:6} {scenario:6}"
                      f" {lib:9} {_summary(r)}", flush=True)
    shutil.rmtree(scratch, ignore_errors=True)
    doc["seconds"] = time.perf_counter() - began
    doc["targets"] = targets(doc["results"], libs)
    out = args.out or os.path.join(BENCH, "results", f"{stamp}.json")
    os.makedirs(os.path.dirname(out), exist_ok=True)
    with open(out, "w") as f:
        json.dump(doc, f, indent=1)
    print(f"Conveyor: {conveyor}")
    print(report(doc, libs))
    print(f"\nwrote {out} ({doc['seconds']:.0f} s)")


def _summary(r: dict[str, Any]) -> str:
    if not r.get("ok"):
        return "ERROR " + str(r.get("error"))[:200]
    if r.get("na"):
        return "n/a"
    s = r["scenario"]
    if s in ("single", "bulk"):
        return f"{r['rate']:,.0f}/s"
    if s == "e2e":
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
