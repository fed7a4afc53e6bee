"""Control across real worker processes, on SQLite and Redis: per-queue slots, rate limits held
by two workers together, hard and soft time limits, revoke and terminate, unique enqueue from
concurrent producer processes, concurrency keys across two workers, inspect and control."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import pytest

from conveyor import Conveyor, State, TimeLimitExceeded
from tests.integration import control_tasks as ct
from tests.integration import taskapp
from tests.integration.conftest import ROOT, WITH_AMQP, Workers, trace_lines, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.timeout(90)]


def spans(env: dict[str, str], name: str) -> list[tuple[str, float, float]]:
    rows = [line.split() for line in trace_lines(env, name)]
    return [(row[0], float(row[1]), float(row[2])) for row in rows]


def most_at_once(intervals: list[tuple[float, float]]) -> int:
    edges = sorted([(b, 1) for b, _ in intervals] + [(e, -1) for _, e in intervals])
    now = peak = 0
    for _, step in edges:  # an end sorts before a start at the same instant
        now += step
        peak = max(peak, now)
    return peak


def conveyor(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "conveyor", *args, "-A",
                           "tests.integration.taskapp"], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=30, check=False)


@pytest.mark.parametrize("stores", WITH_AMQP, indirect=True)
def test_a_queue_limited_to_one_never_runs_two_while_its_neighbour_flows(
    app: Conveyor, workers: Workers, env: dict[str, str]
) -> None:
    workers.start("-Q", "reports:1,emails", "-c", "3")
    wait_for(lambda: len(app.control.ping(timeout=0.5)) == 3, timeout=30)  # every child is up
    reports = [ct.span.apply_async(("report", 0.6), queue="reports") for _ in range(4)]
    emails = [ct.span.apply_async(("email", 0.05), queue="emails") for _ in range(12)]
    for result in emails:
        result.get(timeout=30)
    done = spans(env, "spans")
    assert len([s for s in done if s[0] == "report"]) <= 2  # the e-mails did not wait
    for result in reports:
        result.get(timeout=30)
    report_runs = [(b, e) for kind, b, e in spans(env, "spans") if kind == "report"]
    assert most_at_once(report_runs) == 1


@pytest.mark.parametrize("stores", WITH_AMQP, indirect=True)
def test_a_rate_limit_holds_across_two_workers(
    app: Conveyor, workers: Workers, env: dict[str, str]
) -> None:
    workers.start("--pool", "thread", "-c", "4")
    workers.start("--pool", "thread", "-c", "4")
    results = [ct.limited.delay(n) for n in range(15)]
    assert sorted(r.get(timeout=40) for r in results) == list(range(15))
    starts = sorted(float(t) for t in trace_lines(env, "rate"))
    # 5/s in any one-second window: any six starts span about a second. A start is traced a
    # few to ~100 ms after the store admitted it (thread dispatch), hence the allowance; a
    # limit held per worker would put ten in the first second, six within a few ms.
    assert all(starts[i + 5] - starts[i] > 0.8 for i in range(len(starts) - 5))
    assert 1.8 < starts[-1] - starts[0] < 10  # three windows' worth, not much slower


@pytest.mark.parametrize("stores", WITH_AMQP, indirect=True)
def test_a_hard_limit_kills_a_stuck_task_while_others_on_the_worker_complete(
    app: Conveyor, workers: Workers, env: dict[str, str]
) -> None:
    workers.start("-c", "2")
    stuck = ct.stuck.delay()
    quick = [ct.span.delay("quick", 0.2) for _ in range(8)]
    began = time.monotonic()
    with pytest.raises(TimeLimitExceeded):
        stuck.get(timeout=30)
    assert time.monotonic() - began < 15
    assert [r.get(timeout=30) for r in quick] == ["quick"] * 8
    after = [taskapp.add.delay(i, i) for i in range(4)]  # the replaced child takes work too
    assert [r.get(timeout=30) for r in after] == [0, 2, 4, 6]
    assert stuck.status is State.FAILURE


@pytest.mark.parametrize("stores", WITH_AMQP, indirect=True)
def test_a_soft_limit_is_caught_by_the_task(
    app: Conveyor, workers: Workers, env: dict[str, str]
) -> None:
    workers.start("-c", "2")
    sync, coro = ct.tidy.delay(), ct.async_tidy.delay()
    assert sync.get(timeout=20) == "cleaned up"
    assert coro.get(timeout=20) == "cleaned up"
    assert trace_lines(env, "soft") == ["caught"]


@pytest.mark.parametrize("stores", WITH_AMQP, indirect=True)
def test_a_revoke_before_start_survives_a_worker_restart(
    app: Conveyor, workers: Workers, env: dict[str, str]
) -> None:
    first = workers.start("--pool", "thread")
    assert taskapp.add.delay(1, 1).get(timeout=30) == 2  # up, its signal handlers in place
    later = ct.quiet.apply_async(("revoked",), countdown=3)  # no result record to stop it
    shown = conveyor(env, "revoke", later.id)
    assert shown.returncode == 0 and f"{later.id}: revoked" in shown.stdout, shown.stderr
    first.send_signal(signal.SIGTERM)
    assert first.wait(20) == 0
    workers.start("--pool", "thread")  # started after the revoke, it learns it from the store
    ct.quiet.delay("control")
    wait_for(lambda: trace_lines(env, "quiet") == ["control"], timeout=20)
    wait_for(lambda: app.broker.stats("default").delayed == 0, timeout=20)
    wait_for(lambda: app.broker.stats("default").ready == 0, timeout=20)
    time.sleep(0.5)
    assert trace_lines(env, "quiet") == ["control"]
    assert later.status is State.REVOKED


@pytest.mark.parametrize(("pool", "task"), [("process", "endless"), ("async", "async_endless")])
def test_terminate_stops_a_running_task_where_it_runs(
    app: Conveyor, workers: Workers, env: dict[str, str], pool: str, task: str
) -> None:
    workers.start("--pool", pool, "-c", "1")
    running = getattr(ct, task).delay("victim")
    wait_for(lambda: trace_lines(env, "runs"), timeout=20)
    asked = time.monotonic()
    app.control.revoke(running, terminate=True)
    wait_for(lambda: app.broker.stats("default").in_flight == 0, timeout=10)
    assert time.monotonic() - asked < 3
    assert running.status is State.REVOKED
    assert taskapp.add.delay(2, 3).get(timeout=30) == 5  # a fresh child, or the same loop


@pytest.mark.parametrize("stores", WITH_AMQP, indirect=True)
def test_unique_enqueue_from_eight_concurrent_producers_runs_once(
    app: Conveyor, workers: Workers, env: dict[str, str]
) -> None:
    at = time.time() + 3  # every producer process sends at this instant
    script = ("import time, sys; from tests.integration import control_tasks as ct;"
              f"time.sleep(max(0, {at} - time.time())); print(ct.unique_report.delay(7).id)")
    producers = [subprocess.Popen([sys.executable, "-c", script], env=env, cwd=ROOT,
                                  stdout=subprocess.PIPE, text=True) for _ in range(8)]
    ids = {p.communicate(timeout=30)[0].strip() for p in producers}
    assert len(ids) == 1 and all(p.returncode == 0 for p in producers)
    workers.start("--pool", "thread", "-c", "4")
    assert app.AsyncResult(ids.pop()).get(timeout=30) == 7
    time.sleep(0.5)
    assert trace_lines(env, "unique") == ["7"]
    assert app.broker.stats("default").ready == 0


@pytest.mark.parametrize("stores", WITH_AMQP, indirect=True)
def test_a_concurrency_key_with_limit_two_never_exceeds_two_across_two_workers(
    app: Conveyor, workers: Workers, env: dict[str, str]
) -> None:
    workers.start("--pool", "thread", "-c", "4")
    workers.start("--pool", "thread", "-c", "4")
    burst = [ct.tenant_work.delay("big", 0.3) for _ in range(10)]
    small = [ct.tenant_work.delay("small", 0.1) for _ in range(2)]
    for result in [*small, *burst]:
        result.get(timeout=60)
    runs = spans(env, "tenants")
    big = [(b, e) for tenant, b, e in runs if tenant == "big"]
    assert len(big) == 10 and most_at_once(big) == 2
    last_small = max(e for tenant, _, e in runs if tenant == "small")
    assert last_small < sorted(e for _, e in big)[4]  # not queued behind the burst


@pytest.mark.parametrize("stores", WITH_AMQP, indirect=True)
def test_inspect_and_control_from_the_command_line(
    app: Conveyor, workers: Workers, env: dict[str, str]
) -> None:
    worker = workers.start("-c", "2", "-Q", "default:1,other", "-n", "cli-worker")
    running = ct.endless.delay("inspected")
    later = taskapp.add.apply_async((1, 1), countdown=600)
    wait_for(lambda: trace_lines(env, "runs"), timeout=20)
    active = wait_for(lambda: [p for p in json.loads(conveyor(
        env, "inspect", "active", "--json").stdout) if p["active"]], timeout=15)
    assert active[0]["worker"] == "cli-worker" and active[0]["active"][0]["id"] == running.id
    counts = json.loads(conveyor(env, "inspect", "queues", "--json").stdout)
    assert {r["queue"]: r["in_flight"] for r in counts}["default"] == 1  # RabbitMQ: heartbeats
    stats = json.loads(conveyor(env, "inspect", "stats", "--json").stdout)
    assert sorted(tuple(s["queues"]) for s in stats) == [("default",), ("other",)]
    registered = json.loads(conveyor(env, "inspect", "registered", "--json").stdout)
    assert len(registered) == 2 and all(ct.endless.name in r["tasks"] for r in registered)
    (scheduled,) = json.loads(conveyor(env, "inspect", "scheduled", "--json").stdout)
    assert (scheduled["id"], scheduled["task"]) == (later.id, taskapp.add.name)
    assert "default" in conveyor(env, "inspect").stdout  # bare: the queues, as before
    changed = conveyor(env, "control", "rate-limit", ct.limited.name, "20/s")
    assert changed.returncode == 0, changed.stderr
    assert conveyor(env, "control", "revoke", "--terminate", running.id).returncode == 0
    wait_for(lambda: running.status is State.REVOKED, timeout=10)
    stopped = conveyor(env, "control", "shutdown", "cli-worker")
    assert stopped.returncode == 0, stopped.stderr
    assert worker.wait(30) == 0  # the supervisor stopped instead of replacing its children


@pytest.mark.parametrize("stores", ["sqlite"], indirect=True)
def test_the_kernel_timer_ends_a_child_whose_task_holds_the_interpreter(
    app: Conveyor, workers: Workers, env: dict[str, str]
) -> None:
    workers.start("-c", "1")
    hog = ct.hogs_the_interpreter.delay()
    (line,) = wait_for(lambda: trace_lines(env, "runs"), timeout=20)
    pid = int(line.split()[1])
    began = time.monotonic()
    wait_for(lambda: not _alive(pid), timeout=15)  # time limit 1 s + the 5 s backstop
    assert 5 < time.monotonic() - began < 12
    assert taskapp.add.delay(2, 2).get(timeout=30) == 4  # the supervisor started another
    assert hog.status is State.STARTED  # unsettled: it returns after its lease


def _alive(pid: int) -> bool:
    import os

    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True
