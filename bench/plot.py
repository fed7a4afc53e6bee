"""The scaling plot of a run: end-to-end tasks/s against worker processes and against queues,
one line per broker and library, the medians with their min-max as error bars.

    python -m bench.plot bench/results/<stamp>.json docs/images/scaling.svg

Runs under the bench interpreter (matplotlib is in bench/requirements.txt)."""

from __future__ import annotations

import json
import sys
from typing import Any

import matplotlib

matplotlib.use("svg")
matplotlib.rcParams["svg.fonttype"] = "none"  # text stays text: a small, greppable file
import matplotlib.pyplot as plt  # noqa: E402

AXES = (("processes", "worker processes (1 queue)"), ("queues", "queues (2 worker processes)"))


def draw(doc: dict[str, Any], out: str) -> None:
    """One row of panes per broker: tasks/s against processes, and against queues."""
    data: dict[str, Any] = doc["scaling"]
    fig, grid = plt.subplots(len(data), 2, figsize=(10, 3.6 * len(data)), squeeze=False)
    for row, (backend, libs) in zip(grid, data.items(), strict=True):
        for pane, (axis, title) in zip(row, AXES, strict=True):
            for lib, axes in libs.items():
                if axes.get(axis):
                    _line(pane, lib, axes[axis])
            pane.set_xscale("log", base=2)
            pane.set_xticks([1, 2, 4, 8, 16] if axis == "queues" else [1, 2, 4, 8])
            pane.get_xaxis().set_major_formatter(matplotlib.ticker.ScalarFormatter())
            pane.set_xlabel(title)
            pane.set_ylim(bottom=0)
            pane.grid(True, alpha=0.3)
            pane.set_title(backend, fontsize="medium")
        row[0].set_ylabel("end-to-end tasks/s")
        row[0].legend(fontsize="small")
    commit = doc.get("conveyor", {}).get("commit", "?")
    fig.suptitle(f"Scaling on {doc.get('machine', {}).get('cpus', '?')} cores (median, min-max"
                 f" of the rounds); Conveyor {commit}, {doc.get('started', '')}",
                 fontsize="medium")
    fig.tight_layout()
    fig.savefig(out, metadata={"Date": None})
    print(f"wrote {out}")


def _line(pane: Any, lib: str, points: list[list[float]]) -> None:
    xs = [p[0] for p in points]
    ys = [p[1] for p in points]
    err = [[p[1] - p[2] for p in points], [p[3] - p[1] for p in points]]
    pane.errorbar(xs, ys, yerr=err, marker="o", capsize=3, label=lib,
                  linestyle="--" if lib == "raw" else "-")


if __name__ == "__main__":
    with open(sys.argv[1]) as f:
        draw(json.load(f), sys.argv[2])
