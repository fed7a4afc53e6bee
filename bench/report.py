"""Tables and targets from a run's results: every figure is the median over the rounds, shown
with its min-max; ratios are taken between medians of the same run.

    python -m bench.report bench/results/<stamp>.json     # print the report of a saved run

Standard library only (bench.run imports it)."""

from __future__ import annotations

import json
import statistics
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

COLUMNS = [  # (title, scenario, field)
    ("single enqueue /s", "single", "rate"),
    ("bulk enqueue /s", "bulk", "rate"),
    ("e2e tasks/s", "e2e", "rate"),
    ("worker CPU ms/task", "e2e", "cpu_ms_per_task"),
    ("Redis CPU ms/task", "e2e", "redis_cpu_ms_per_task"),
    ("idle p50 ms", "idle", "p50_ms"),
    ("idle p99 ms", "idle", "p99_ms"),
    ("idle CPU %", "idle", "idle_cpu_percent"),
    ("peak RSS MB", "e2e", "peak_rss_mb"),
]
#: Scaling points: scenario -> (axis, value). Worker processes with one queue; queues with two.
SCALING = {f"scale-p{p}": ("processes", p) for p in (1, 2, 4, 8)} | {
    f"scale-q{q}": ("queues", q) for q in (1, 4, 16)}


@dataclass
class Figure:
    """One field of one (backend, lib, scenario) over the rounds."""

    values: list[float]
    timed_out: bool = False

    @property
    def median(self) -> float:
        return statistics.median(self.values)

    def cell(self) -> str:
        text = fmt(self.median) + ("*" if self.timed_out else "")
        if len(self.values) > 1:
            text += f" [{fmt(min(self.values))}-{fmt(max(self.values))}]"
        return text


class Results:
    """A run's results, looked up by (backend, lib, scenario, field)."""

    def __init__(self, results: list[dict[str, Any]]) -> None:
        self.results = results

    def rows(self, backend: str, lib: str, scenario: str) -> list[dict[str, Any]]:
        return [r for r in self.results
                if (r["backend"], r["lib"], r["scenario"]) == (backend, lib, scenario)]

    def figure(self, backend: str, lib: str, scenario: str, field: str) -> Figure | str | None:
        """The figure over the rounds that measured it; "error"/"n/a" when none did."""
        rows = self.rows(backend, lib, scenario)
        values = [float(r[field]) for r in rows if r.get("ok") and not r.get("na")
                  and isinstance(r.get(field), int | float)]
        if values:
            return Figure(values, any(r.get("timed_out") for r in rows))
        if any(r.get("na") for r in rows):
            return "n/a"
        return "error" if rows and any(not r.get("ok") for r in rows) else None

    def median(self, backend: str, lib: str, scenario: str, field: str) -> float | None:
        f = self.figure(backend, lib, scenario, field)
        return f.median if isinstance(f, Figure) else None

    def backends(self) -> list[str]:
        return list(dict.fromkeys(r["backend"] for r in self.results))

    def libs(self, backend: str) -> list[str]:
        return list(dict.fromkeys(r["lib"] for r in self.results if r["backend"] == backend
                                  and not r["scenario"].startswith(("scale-", "workflows"))))


def fmt(v: float | str | None) -> str:
    if v is None:
        return "-"
    if isinstance(v, str):
        return v
    if abs(v) >= 100:
        return f"{v:,.0f}"
    if abs(v) >= 10:
        return f"{v:.1f}"
    return f"{v:.2f}"


def table(res: Results, backend: str) -> str:
    """One row per library; each peer cell also gives Conveyor ÷ peer (of the medians)."""
    columns = [c for c in COLUMNS if backend == "redis" or not c[2].startswith("redis")]
    lines = ["| library | " + " | ".join(c[0] for c in columns) + " |",
             "|---" * (len(columns) + 1) + "|"]
    for lib in res.libs(backend):
        cells = []
        for _, scenario, field in columns:
            f = res.figure(backend, lib, scenario, field)
            cell = f.cell() if isinstance(f, Figure) else fmt(f)
            ours = res.median(backend, "conveyor", scenario, field)
            if lib != "conveyor" and isinstance(f, Figure) and f.median and ours is not None:
                cell += f" ({ours / f.median:.2f}x)"
            cells.append(cell)
        lines.append(f"| {lib} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


# -- targets --------------------------------------------------------------------------------
@dataclass
class Target:
    """``ours`` against ``factor`` times ``reference`` (or against the constant ``goal``)."""

    backend: str
    name: str
    ours: tuple[str, str, str]  # lib, scenario, field
    reference: tuple[str, str, str] | None = None
    factor: float = 1.0
    goal: float | None = None
    higher: bool = True  # whether more is better

    def judge(self, res: Results) -> dict[str, Any]:
        mine = res.median(self.backend, *self.ours)
        ref = self.reference_median(res)
        goal = self.goal if self.reference is None else (
            None if ref is None else self.factor * ref)
        row: dict[str, Any] = {"backend": self.backend, "target": self.name, "ours": mine,
                               "reference": ref, "goal": goal}
        if mine is None or goal is None:
            return {**row, "status": "not measured"}
        if ref:
            row["ratio"] = mine / ref
        met = mine >= goal if self.higher else mine <= goal
        return {**row, "status": "met" if met else "missed"}

    def reference_median(self, res: Results) -> float | None:
        """The reference's median; a lib written ``a|b`` means the better of a and b."""
        if self.reference is None:
            return None
        libs, scenario, field = self.reference
        found = [m for lib in libs.split("|")
                 if (m := res.median(self.backend, lib, scenario, field)) is not None]
        if not found:
            return None
        return max(found) if self.higher else min(found)


def _issue_targets() -> list[Target]:
    """The targets of the performance issue, in its order, then RabbitMQ's (from its issue);
    a row whose backend did not run reads "not measured"."""
    c, nr, ev = "conveyor", "conveyor-noresult", "conveyor-noevents"
    e2e, single, bulk = ("e2e", "rate"), ("single", "rate"), ("bulk", "rate")
    p99, rss = ("idle", "p99_ms"), ("e2e", "peak_rss_mb")
    return [
        Target("redis", "e2e, results stored >= 1.5x Huey", (c, *e2e), ("huey", *e2e), 1.5),
        Target("redis", "e2e, results stored >= 0.9x raw LPUSH/BRPOP", (c, *e2e),
               ("raw", *e2e), 0.9),
        Target("redis", "e2e, ignore_result >= raw LPUSH/BRPOP", (nr, *e2e), ("raw", *e2e)),
        Target("redis", "single enqueue >= Huey", (c, *single), ("huey", *single)),
        Target("redis", "bulk enqueue >= 50,000/s", (c, *bulk), goal=50_000),
        Target("redis", "idle p99 <= 2 ms", (c, *p99), goal=2.0, higher=False),
        Target("redis", "worker tree RSS (-c 2) <= 70 MB", (c, *rss), goal=70.0, higher=False),
        Target("redis", "events on cost <= 10% (e2e >= 0.9x events off)", (c, *e2e),
               (ev, *e2e), 0.9),
        Target("sqlite", "e2e, results stored >= 1.5x SqliteHuey", (c, *e2e), ("huey", *e2e),
               1.5),
        Target("sqlite", "single enqueue >= SqliteHuey", (c, *single), ("huey", *single)),
        Target("sqlite", "idle p99 <= 5 ms", (c, *p99), goal=5.0, higher=False),
        Target("sqlite", "idle worker CPU < 1%", (c, "idle", "idle_cpu_percent"), goal=1.0,
               higher=False),
        Target("sqlite", "worker tree RSS (-c 2) <= 70 MB", (c, *rss), goal=70.0,
               higher=False),
        Target("sqlite", "events on cost <= 10% (e2e >= 0.9x events off)", (c, *e2e),
               (ev, *e2e), 0.9),
        Target("rabbitmq", "e2e, results off, confirms on >= 1.5x the faster of Celery and"
               " Dramatiq", (nr, *e2e), ("celery|dramatiq", *e2e), 1.5),
        Target("rabbitmq", "e2e, results in Redis >= the faster of Celery and Dramatiq",
               (c, *e2e), ("celery|dramatiq", *e2e)),
        Target("rabbitmq", "idle p99 <= 3 ms", (c, *p99), goal=3.0, higher=False),
        Target("rabbitmq", "worker tree RSS (-c 2) <= 70 MB", (c, *rss), goal=70.0,
               higher=False),
    ]


TARGETS: list[Target] = _issue_targets()


def targets(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    res = Results(results)
    return [t.judge(res) for t in TARGETS]


def targets_table(judged: list[dict[str, Any]], backends: list[str]) -> str:
    lines = ["| broker | target | Conveyor | reference | ratio | goal | status |",
             "|---|---|---|---|---|---|---|"]
    for t in judged:
        if t["backend"] not in backends:
            continue
        ratio = f"{t['ratio']:.2f}x" if "ratio" in t else "-"
        lines.append(f"| {t['backend']} | {t['target']} | {fmt(t['ours'])} |"
                     f" {fmt(t['reference'])} | {ratio} | {fmt(t['goal'])} | {t['status']} |")
    return "\n".join(lines)


# -- scaling --------------------------------------------------------------------------------
def scaling(results: list[dict[str, Any]]) -> dict[str, Any]:
    """{backend: {lib: {axis: [(x, median rate, min, max, median RSS MB)]}}}."""
    res = Results(results)
    out: dict[str, Any] = {}
    for r in results:
        if r["scenario"] not in SCALING:
            continue
        axis, x = SCALING[r["scenario"]]
        f = res.figure(r["backend"], r["lib"], r["scenario"], "rate")
        mem = res.median(r["backend"], r["lib"], r["scenario"], "peak_rss_mb")
        if not isinstance(f, Figure):
            continue
        points = out.setdefault(r["backend"], {}).setdefault(r["lib"], {}).setdefault(axis, {})
        points[x] = (x, f.median, min(f.values), max(f.values), mem)
    return {b: {lib: {axis: sorted(p.values()) for axis, p in axes.items()}
                for lib, axes in libs.items()} for b, libs in out.items()}


def scaling_table(data: dict[str, Any]) -> str:
    lines = ["| broker | library | axis | " + " | ".join(["1", "2", "4", "8", "16"]) + " |",
             "|---|---|---|---|---|---|---|---|"]
    for backend, libs in data.items():
        for lib, axes in libs.items():
            for axis, points in axes.items():
                by_x = {p[0]: p for p in points}
                cells = [f"{fmt(by_x[x][1])} ({fmt(by_x[x][4])} MB)" if x in by_x else ""
                         for x in (1, 2, 4, 8, 16)]
                lines.append(f"| {backend} | {lib} | {axis} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def report(doc: dict[str, Any], extra: Callable[[list[dict[str, Any]]], str] | None = None
           ) -> str:
    res = Results(doc["results"])
    rounds = doc.get("args", {}).get("rounds", 1)
    parts = [f"medians of {rounds} interleaved round(s), [min-max] over the rounds"]
    for backend in res.backends():
        parts.append(f"\n### {backend}\n\n" + table(res, backend))
    parts.append("\n(x) = Conveyor ÷ peer, of the medians: above 1 is better for rates, below 1"
                 " for ms, CPU and MB. * = a round timed out (rate of the tasks done).")
    data = scaling(doc["results"])
    if data:
        parts.append("\n### scaling (e2e tasks/s, peak RSS of the worker tree)\n\n"
                     + scaling_table(data))
    if extra is not None:
        parts.append(extra(doc["results"]))
    parts.append("\n### targets\n\n" + targets_table(doc["targets"], res.backends()))
    for r in doc["results"]:
        if not r.get("ok"):
            parts.append(f"\n{r['backend']}/{r['lib']}/{r['scenario']} round"
                         f" {r.get('round', '?')}: {r.get('error')}")
    return "\n".join(parts)


if __name__ == "__main__":
    with open(sys.argv[1]) as f:
        saved = json.load(f)
    saved["targets"] = targets(saved["results"])
    print(report(saved))
