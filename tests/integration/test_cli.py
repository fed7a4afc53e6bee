"""The ``conveyor`` command against a real store, run as a user would run it."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid

import pytest

from conveyor import Conveyor, State
from conveyor.brokers import Envelope
from tests.integration import taskapp
from tests.integration.conftest import ROOT

pytestmark = pytest.mark.timeout(60)


def conveyor(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "conveyor", *args], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=30, check=False)


def app_args(*args: str) -> list[str]:
    return [*args, "-A", "tests.integration.taskapp"]


def test_inspect_result_and_purge(app: Conveyor, env: dict[str, str]) -> None:
    result = taskapp.add.delay(1, 2)
    taskapp.add.apply_async((3, 4), countdown=600)
    shown = conveyor(env, *app_args("inspect"))
    assert shown.returncode == 0, shown.stderr
    assert "default" in shown.stdout and "│ 1 " in shown.stdout
    state = conveyor(env, *app_args("result"), result.id)
    assert f"{result.id}: PENDING" in state.stdout
    purged = conveyor(env, *app_args("purge", "-Q", "default", "--yes"))
    assert "purged 2 message(s)" in purged.stdout
    assert app.broker.stats("default").ready == 0


def test_dead_letter_list_replay_purge(app: Conveyor, env: dict[str, str]) -> None:
    bad = Envelope(str(uuid.uuid4()), "default", b"not a message")
    app.broker.publish([bad])
    (delivery,) = _claim_one(app)
    _run(delivery.dead_letter("MalformedMessage: test"))
    listed = conveyor(env, *app_args("dlq", "list", "--json"))
    (row,) = [json.loads(line) for line in listed.stdout.splitlines()]
    assert (row["id"], row["queue"], row["reason"]) == (bad.id, "default", "MalformedMessage: test")
    table = conveyor(env, *app_args("dlq", "list"))
    assert bad.id in table.stdout and "1 dead letter(s)" in table.stdout
    replayed = conveyor(env, *app_args("dlq", "replay"), bad.id)
    assert "replayed 1 message(s)" in replayed.stdout
    assert app.broker.stats("default").ready == 1
    (again,) = _claim_one(app)
    _run(again.dead_letter("still bad"))
    purged = conveyor(env, *app_args("dlq", "purge", "--yes"))
    assert "purged 1 dead letter(s)" in purged.stdout
    assert app.broker.dead_letters() == []


def test_result_of_unknown_id(app: Conveyor, env: dict[str, str]) -> None:
    missing = str(uuid.uuid4())
    shown = conveyor(env, *app_args("result"), missing)
    assert f"{missing}: {State.UNKNOWN}" in shown.stdout


def test_bad_app_path_is_a_clear_error(env: dict[str, str]) -> None:
    shown = conveyor(env, "inspect", "-A", "no_such_module_here")
    assert shown.returncode != 0
    assert "cannot import 'no_such_module_here'" in shown.stderr
    assert "Traceback" not in shown.stderr


def test_unreachable_store_error_hides_the_password(env: dict[str, str]) -> None:
    pytest.importorskip("conveyor.brokers.redis")
    env = {**env, "CONVEYOR_BROKER_URL": "redis://user:hunter2@127.0.0.1:1/0"}
    shown = conveyor(env, *app_args("inspect", "-Q", "default"))
    assert shown.returncode != 0
    assert "hunter2" not in shown.stdout + shown.stderr
    assert "127.0.0.1:1" in shown.stderr
    assert "Traceback" not in shown.stderr


def _claim_one(app: Conveyor) -> list[object]:
    async def claim() -> list[object]:
        consumer = app.broker.consume(["default"], prefetch=1, lease=30)
        got = await anext(consumer)
        return [got]

    return _run(claim())  # type: ignore[no-any-return]


def _run(coro: object) -> object:
    import asyncio

    return asyncio.run(coro)  # type: ignore[arg-type]
