"""The app of the dashboard CPU benchmark (:mod:`bench.dashboard_cpu`): one no-op task; the
store comes from ``CONVEYOR_BROKER_URL``."""

from __future__ import annotations

from conveyor import Conveyor

app = Conveyor("benchdash")


@app.task(name="bench.noop")
def noop(n: int) -> int:
    return n
