"""Holes found by trying Conveyor as a new user: each closed, each checked with real worker
processes on SQLite and Redis."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from conveyor import Conveyor, SerializationError, State, UnknownTask
from conveyor.errors import DeliveryLimitExceeded
from tests.integration import taskapp
from tests.integration.conftest import ROOT, WITH_AMQP, Workers, trace_lines, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.timeout(90)]


def test_unencodable_result_fails_once_naming_task_and_type(
    app: Conveyor, workers: Workers, env: dict[str, str]
) -> None:
    workers.start("--pool", "thread")
    result = taskapp.huge.delay()
    with pytest.raises(SerializationError) as caught:
        result.get(timeout=20)
    text = str(caught.value)
    assert "tests.integration.taskapp.huge" in text and "(int)" in text
    assert "out of the 64-bit range" in text
    assert taskapp.add.delay(1, 1).get(timeout=20) == 2  # the worker moved on
    assert result.status is State.FAILURE
    assert len(trace_lines(env, "runs")) == 1
    (dead,) = wait_for(lambda: app.broker.dead_letters("default"))
    assert "result not encodable" in dead.reason


@pytest.mark.parametrize("stores", WITH_AMQP, indirect=True)
def test_task_killing_its_process_stops_at_the_delivery_limit(
    app: Conveyor, workers: Workers, env: dict[str, str]
) -> None:
    """On RabbitMQ too, where the killed process's id claim outlives it: the copy deferred to
    wait for that claim keeps the crash counted."""
    workers.start("-c", "1", lease=1.0)
    result = taskapp.crashes_its_process.delay()
    with pytest.raises(DeliveryLimitExceeded, match="delivery limit reached"):
        result.get(timeout=60)
    runs = trace_lines(env, "runs")
    assert len(runs) == 2  # the task's delivery_limit
    (dead,) = wait_for(lambda: app.broker.dead_letters("default"))
    assert dead.envelope.id == result.id
    assert "delivery limit reached" in dead.reason
    assert taskapp.add.delay(2, 3).get(timeout=30) == 5


def test_unknown_task_records_failure_and_the_log_lists_known_tasks(
    app: Conveyor, workers: Workers, tmp_path: Path
) -> None:
    log = tmp_path / "worker.log"
    workers.start("--pool", "thread", "--logfile", str(log))
    result = app.send_task("no.such.task", args=[1])
    with pytest.raises(UnknownTask, match=r"no task named 'no\.such\.task'.*app 'itest'"):
        result.get(timeout=20)
    assert result.status is State.FAILURE
    text = wait_for(lambda: "no.such.task" in log.read_text() and log.read_text())
    assert "tests.integration.taskapp.add" in text  # which tasks the worker knows


def test_worker_logs_banner_task_lines_and_shutdown(
    app: Conveyor, workers: Workers, tmp_path: Path
) -> None:
    log = tmp_path / "worker.log"
    proc = workers.start("-c", "2", "-l", "info", "--logfile", str(log), "--name", "w-log")
    result = taskapp.add.delay(2, 2)
    assert result.get(timeout=20) == 4
    wait_for(lambda: f"[{result.id}] SUCCESS in" in log.read_text())
    proc.send_signal(2)
    proc.wait(20)
    text = log.read_text()
    assert "worker w-log ready" in text
    assert "concurrency 2" in text and "tests.integration.taskapp.add" in text
    assert text.count("worker w-log ready") == 1  # one banner, not one per child
    assert f"tests.integration.taskapp.add[{result.id}] SUCCESS in" in text
    assert "stopped:" in text and "1 processed" in text


def test_track_started_off_keeps_pending_until_the_end(app: Conveyor, workers: Workers) -> None:
    workers.start("--pool", "thread")
    result = taskapp.untracked.delay(1.0)
    time.sleep(0.5)
    assert result.status is State.PENDING
    assert result.get(timeout=20) == "done"
    assert result.state is State.SUCCESS and result.info == "done"
    assert result.date_done is not None


def _worker(env: dict[str, str], app_path: str, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "conveyor", "worker", "-A", app_path, *args],
                            env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)


def test_worker_with_an_unimportable_app_stops_with_one_error(env: dict[str, str]) -> None:
    started = time.monotonic()
    proc = _worker(env, "nosuchmodule", "-c", "2")
    _, err = proc.communicate(timeout=30)
    assert proc.returncode != 0
    assert time.monotonic() - started < 15
    errors = [line for line in err.splitlines() if "Error" in line]
    assert len(errors) == 1, err
    assert "cannot import 'nosuchmodule'" in errors[0]


def test_worker_accepts_a_celery_style_dotted_app_path(app: Conveyor, workers: Workers,
                                                      env: dict[str, str]) -> None:
    proc = _worker(env, "tests.integration.taskapp.app", "--pool", "thread", "-l", "warning")
    workers.procs.append(proc)  # type: ignore[arg-type]
    assert taskapp.add.delay(20, 22).get(timeout=20) == 42


@pytest.mark.parametrize("pool", ["process", "thread"])
def test_a_task_calling_sys_exit_fails_and_the_worker_goes_on(
    app: Conveyor, workers: Workers, pool: str
) -> None:
    workers.start("--pool", pool, "-c", "1")
    result = taskapp.exits.delay(3)
    with pytest.raises(SystemExit):
        result.get(timeout=30)
    assert result.status is State.FAILURE and result.info.code == 3
    assert taskapp.add.delay(2, 3).get(timeout=30) == 5
