"""Workflows and beats across real processes: a chord whose worker is killed with SIGKILL,
beats that run side by side, a leader killed with SIGKILL, restarts, and workers with --beat."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

from conveyor import Conveyor, chord
from conveyor.canvas.launch import coordination
from tests.integration import taskapp
from tests.integration.conftest import ROOT, WITH_AMQP, Workers, trace_lines, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.timeout(90)]


class Beats:
    """``conveyor beat`` processes on the test's store (beat_lease 1.5 s)."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env = {**env, "CONVEYOR_BEAT_LEASE": "1.5"}
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self) -> subprocess.Popen[bytes]:
        argv = [sys.executable, "-m", "conveyor", "beat", "-A", "tests.integration.taskapp",
                "-l", "warning"]
        proc = subprocess.Popen(argv, env=self.env, cwd=ROOT, start_new_session=True)
        self.procs.append(proc)
        return proc

    def stop_all(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


@pytest.fixture
def beats(env: dict[str, str]) -> Iterator[Beats]:
    started = Beats(env)
    yield started
    started.stop_all()


def ticks(env: dict[str, str]) -> list[float]:
    """The instants the "every-second" entry ran for, one per run, in order."""
    return sorted(float(line.split()[0]) for line in trace_lines(env, "ticks"))


def assert_each_tick_once(found: list[float], at_least: int) -> None:
    assert len(found) >= at_least, found
    assert len(set(found)) == len(found), f"a tick ran twice: {found}"
    assert found == [found[0] + i for i in range(len(found))], f"a tick was skipped: {found}"


def leader_pid(app: Conveyor) -> int | None:
    held = coordination(app).get_value("beat:itest:leader")
    return None if held is None else int(held.decode().rsplit(".", 2)[1])


def test_two_beats_send_each_tick_once_and_survive_a_killed_leader(
        app: Conveyor, workers: Workers, beats: Beats, env: dict[str, str]) -> None:
    procs = {p.pid: p for p in (beats.start(), beats.start())}
    workers.start("--pool", "thread", "-c", "2")
    wait_for(lambda: len(ticks(env)) >= 3, timeout=20)
    leader = wait_for(lambda: leader_pid(app))
    assert leader in procs
    os.kill(leader, signal.SIGKILL)
    procs[leader].wait()
    killed_at = time.monotonic()
    survivor = wait_for(lambda: leader_pid(app) not in (None, leader) and leader_pid(app),
                        timeout=15)
    assert survivor in procs and time.monotonic() - killed_at < 5  # within a few seconds
    count = len(ticks(env))
    wait_for(lambda: len(ticks(env)) >= count + 3, timeout=20)
    time.sleep(1.5)  # let the last tick sent finish running
    assert_each_tick_once(ticks(env), at_least=count + 3)


def test_a_restarted_beat_does_not_send_a_tick_again(
        app: Conveyor, workers: Workers, beats: Beats, env: dict[str, str]) -> None:
    workers.start("--pool", "thread", "-c", "2")
    first = beats.start()
    wait_for(lambda: len(ticks(env)) >= 2, timeout=20)
    first.send_signal(signal.SIGTERM)
    assert first.wait(10) == 0
    time.sleep(2.5)  # down for two ticks or so: catch_up="all" sends them after the restart
    beats.start()
    count = len(ticks(env))
    wait_for(lambda: len(ticks(env)) >= count + 4, timeout=20)
    time.sleep(1.5)
    assert_each_tick_once(ticks(env), at_least=count + 4)


@pytest.mark.parametrize("stores", WITH_AMQP, indirect=True)
def test_many_workers_with_beat_send_each_tick_once(
        app: Conveyor, workers: Workers, env: dict[str, str]) -> None:
    workers.env["CONVEYOR_BEAT_LEASE"] = "1.5"
    workers.start("--beat", "--pool", "process", "-c", "2")
    workers.start("--beat", "--pool", "thread", "-c", "2")
    wait_for(lambda: len(ticks(env)) >= 5, timeout=30)
    time.sleep(1.5)
    assert_each_tick_once(ticks(env), at_least=5)


@pytest.mark.parametrize("stores", WITH_AMQP, indirect=True)
def test_chord_completes_once_when_a_worker_is_killed(
        app: Conveyor, workers: Workers, env: dict[str, str]) -> None:
    victim = workers.start("--pool", "thread", "-c", "2", lease=1.5)
    result = chord(taskapp.nap.s(i, 0.3) for i in range(12))(taskapp.ledger.s("k"))
    wait_for(lambda: len(trace_lines(env, "naps")) >= 4, timeout=20)
    os.kill(victim.pid, signal.SIGKILL)
    victim.wait()
    workers.start("--pool", "thread", "-c", "2", lease=1.5)
    assert result.get(timeout=40) == sum(range(12))
    time.sleep(2.0)  # a duplicate callback would have run by now
    assert trace_lines(env, "ledger") == [f"k {sum(range(12))}"]  # the callback ran once
