"""The dashboard's task index: events folded into rows, the cursor kept with them, keyset pages
over 100,000 tasks served from indexes, and one index per store."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from conveyor import events as ev
from conveyor.dashboard.index import TaskFilter, TaskIndex
from conveyor.errors import ConfigurationError
from conveyor.events import Event

pytest.importorskip("starlette")


def task_events(task_id: str, at: float, *, fail: bool = False, n: int = 0) -> list[Event]:
    worker = f"w{n % 3}"
    end = (Event(ev.TASK_FAILED, at + 0.3, task_id, "shop.pay", worker, 7,
                 {"runtime": 0.2, "error": "ValueError", "message": "no money"}) if fail else
           Event(ev.TASK_SUCCEEDED, at + 0.3, task_id, "shop.add", worker, 7,
                 {"runtime": 0.2, "result": "3"}))
    return [Event(ev.TASK_RECEIVED, at, task_id, end.task, worker, 7,
                  {"queue": "default", "retries": 0, "args": "(1, 2)", "kwargs": "{}",
                   "sent_at": at - 0.5}, id=""),
            Event(ev.TASK_STARTED, at + 0.1, task_id, end.task, worker, 7), end]


def numbered(events: list[Event], start: int = 1) -> list[Event]:
    return [Event(e.kind, e.at, e.task_id, e.task, e.worker, e.pid, e.fields, str(start + i))
            for i, e in enumerate(events)]


def test_events_fold_into_one_row_with_its_timeline(tmp_path: Path) -> None:
    index = TaskIndex(tmp_path / "i.db", "sqlite:///x.db")
    first, second = task_events("t1", 100.0)[:2], task_events("t1", 100.0)[2:]
    index.apply(numbered(first))
    assert index.task("t1")["state"] == "STARTED"  # type: ignore[index]
    index.apply(numbered(second, 3))
    row = index.task("t1")
    assert row is not None
    assert (row["state"], row["name"], row["worker"], row["queue"]) == (
        "SUCCESS", "shop.add", "w0", "default")
    assert row["runtime"] == 0.2 and row["result"] == "3" and row["args"] == "(1, 2)"
    assert row["wait"] == pytest.approx(0.6)  # started (100.1) - sent (99.5)
    assert [s["kind"] for s in row["timeline"]] == [
        ev.TASK_RECEIVED, ev.TASK_STARTED, ev.TASK_SUCCEEDED]
    assert index.cursor == "3"


def test_a_late_sent_event_never_moves_a_task_back(tmp_path: Path) -> None:
    index = TaskIndex(tmp_path / "i.db", "s")
    index.apply(numbered(task_events("t1", 100.0)))
    index.apply(numbered([Event(ev.TASK_SENT, 99.0, "t1", "shop.add", "", 1, {})], 9))
    assert index.task("t1")["state"] == "SUCCESS"  # type: ignore[index]


def test_an_index_refuses_another_store(tmp_path: Path) -> None:
    TaskIndex(tmp_path / "i.db", "redis://127.0.0.1:6379/0").close()
    with pytest.raises(ConfigurationError, match="holds the tasks of redis://"):
        TaskIndex(tmp_path / "i.db", "sqlite:///other.db")


def test_the_cursor_survives_reopening(tmp_path: Path) -> None:
    index = TaskIndex(tmp_path / "i.db", "s")
    index.apply(numbered(task_events("t1", 1.0) + task_events("t2", 2.0)))
    index.close()
    again = TaskIndex(tmp_path / "i.db", "s")
    assert again.cursor == "6" and again.count() == 2


@pytest.fixture(scope="module")
def big(tmp_path_factory: pytest.TempPathFactory) -> TaskIndex:
    """100,000 finished tasks, one in ten failed, applied as events in batches."""
    index = TaskIndex(tmp_path_factory.mktemp("big") / "i.db", "s", keep=1_000_000)
    n, batch = 0, []
    for i in range(100_000):
        batch += task_events(f"task-{i:06d}", 1000.0 + i, fail=i % 10 == 0, n=i)[2:]
        if len(batch) >= 5000:
            index.apply(numbered(batch, n + 1))
            n, batch = n + len(batch), []
    index.apply(numbered(batch, n + 1))
    return index


def test_keyset_pages_over_100k_tasks(big: TaskIndex) -> None:
    assert big.count() == 100_000
    first = big.page(TaskFilter(), None, 50)
    assert first.rows[0]["id"] == "task-099999" and len(first.rows) == 50
    cursor, seen = first.next_before, 50
    for _ in range(20):  # walk a few pages: each continues exactly where the last stopped
        page = big.page(TaskFilter(), cursor, 50)
        assert page.rows[0]["n"] == cursor - 1  # type: ignore[operator]
        cursor, seen = page.next_before, seen + len(page.rows)
    deep = big.page(TaskFilter(), 60, 50)  # near the very end
    assert [r["n"] for r in deep.rows] == list(range(59, 9, -1))
    last = big.page(TaskFilter(), 3, 50)
    assert len(last.rows) == 2 and last.next_before is None


def test_filters_combine_and_page(big: TaskIndex) -> None:
    failed = big.page(TaskFilter(state="FAILURE"), None, 50)
    assert all(r["state"] == "FAILURE" and r["name"] == "shop.pay" for r in failed.rows)
    assert failed.rows[0]["id"] == "task-099990"
    by_worker = big.page(TaskFilter(worker="w1", state="SUCCESS"), None, 20)
    assert {r["worker"] for r in by_worker.rows} == {"w1"}
    prefix = big.page(TaskFilter(id="task-01234"), None, 50)
    assert [r["id"] for r in prefix.rows] == [f"task-01234{i}" for i in range(9, -1, -1)]
    window = big.page(TaskFilter(since=1000.0 + 500, until=1000.0 + 509.9), None, 50)
    assert len(window.rows) == 10


def test_list_queries_use_an_index(big: TaskIndex) -> None:
    """Each filter is answered from an index in list order, so a page costs the same at any
    depth; an id prefix is looked up in the id index (it matches few tasks) and then sorted."""
    conn = big._conn

    def plan(where: TaskFilter) -> str:
        clauses, params = where.where()
        sql = "SELECT id FROM tasks WHERE " + " AND ".join([*clauses, "n < ?"])
        return " ".join(str(r[3]) for r in conn.execute(
            f"EXPLAIN QUERY PLAN {sql} ORDER BY n DESC LIMIT 51", [*params, 5000]))

    for where in (TaskFilter(), TaskFilter(state="FAILURE"), TaskFilter(name="shop.add"),
                  TaskFilter(worker="w2")):
        found = plan(where)
        assert "SEARCH tasks USING" in found and "TEMP B-TREE" not in found, found
    assert "sqlite_autoindex_tasks_1 (id>? AND id<?)" in plan(TaskFilter(id="task-5"))


def test_trim_keeps_the_newest(tmp_path: Path) -> None:
    index = TaskIndex(tmp_path / "i.db", "s", keep=10)
    index.apply(numbered([e for i in range(25) for e in task_events(f"t{i:02d}", float(i))]))
    assert index.trim(time.time()) == 15
    assert index.page(TaskFilter(), None, 50).rows[-1]["id"] == "t15"
