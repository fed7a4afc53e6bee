"""The in-process helper users test their own tasks with (memory store, real execution path)."""

from __future__ import annotations

from typing import Any

import pytest

from conveyor import Conveyor, State, Task
from conveyor.testing import run_queued


@pytest.fixture
def app() -> Conveyor:
    return Conveyor("t", broker="memory://")


def test_runs_queued_tasks_and_returns_results(app: Conveyor) -> None:
    @app.task
    def double(x: int) -> int:
        return 2 * x

    @app.task(queue="other")
    async def triple(x: int) -> int:
        return 3 * x

    double.delay(2)
    triple.delay(2)
    results = run_queued(app)
    assert sorted(r.get(timeout=1) for r in results) == [4, 6]


def test_retries_run_and_errors_are_reraised(app: Conveyor) -> None:
    @app.task(bind=True, retries=2, retry_backoff=0.05, retry_jitter=False)
    def flaky(self: Task[Any, Any]) -> int:
        if self.request.retries < 2:
            raise ConnectionError("again")
        return self.request.retries

    @app.task
    def broken() -> None:
        raise KeyError("nope")

    ok = flaky.delay()
    broken.delay()
    with pytest.raises(KeyError, match="nope"):
        run_queued(app)
    assert ok.get(timeout=1) == 2


def test_real_serialization_is_exercised(app: Conveyor) -> None:
    from datetime import UTC, datetime

    @app.task
    def year(when: datetime) -> int:
        return when.year

    result = year.delay(datetime(2031, 5, 1, tzinfo=UTC))
    run_queued(app)
    assert result.get(timeout=1) == 2031
    assert result.status is State.SUCCESS
