"""Hostile and broken messages against a real worker: refused before decoding, dead-lettered
with their reason, nothing they carry runs, and the worker keeps working."""

from __future__ import annotations

import os
import pickle
import uuid
from pathlib import Path

import pytest

from conveyor import Conveyor, State, UnknownTask
from conveyor.brokers import Envelope
from tests.integration import taskapp
from tests.integration.conftest import Workers, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.timeout(90)]
KEY = "integration-signing-key-0123456789"


class Gadget:
    """Unpickling this runs os.system: what a pickle-accepting worker would execute."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return os.system, (f"touch {self.marker}",)


def _reasons(app: Conveyor, count: int) -> dict[str, str]:
    letters = wait_for(lambda: len(app.broker.dead_letters()) >= count
                       and app.broker.dead_letters(), timeout=20)
    return {d.envelope.id: d.reason for d in letters}


def test_pickle_gadgets_and_broken_bodies_never_run(
    app: Conveyor, workers: Workers, tmp_path: Path
) -> None:
    marker = tmp_path / "pwned"
    gadget = Envelope(str(uuid.uuid4()), "default", pickle.dumps(Gadget(marker)),
                      "application/x-python-pickle")
    bad_utf8 = Envelope(str(uuid.uuid4()), "default", b'{"task": "\xff\xfe"}')
    deep = Envelope(str(uuid.uuid4()), "default", b"[" * 5000 + b"]" * 5000)
    huge = Envelope(str(uuid.uuid4()), "default", b" " * (app.conf.max_message_size + 100))
    app.broker.publish([gadget, bad_utf8, deep, huge])
    workers.start("--pool", "thread")
    reasons = _reasons(app, 4)
    assert taskapp.add.delay(1, 1).get(timeout=20) == 2  # the worker is alive
    assert not marker.exists()
    assert "ContentTypeRefused" in reasons[gadget.id]
    assert "MalformedMessage" in reasons[bad_utf8.id]
    assert "MalformedMessage" in reasons[deep.id]
    assert "exceeds max_message_size" in reasons[huge.id]
    assert app.AsyncResult(gadget.id).status is State.FAILURE  # its result says so


def test_only_registered_tasks_are_dispatched(
    app: Conveyor, workers: Workers, tmp_path: Path
) -> None:
    marker = tmp_path / "ran"
    workers.start("--pool", "thread")
    for name in ("os.system", "builtins.eval", "subprocess.call"):
        result = app.send_task(name, args=[f"touch {marker}"])
        with pytest.raises(UnknownTask, match="no task named"):
            result.get(timeout=20)
    assert not marker.exists()


def test_a_signing_worker_refuses_unsigned_and_altered_messages(
    app: Conveyor, workers: Workers, env: dict[str, str]
) -> None:
    workers.env = {**env, "CONVEYOR_SIGNING_KEYS": KEY}
    workers.start("--pool", "thread")
    unsigned = taskapp.add.delay(1, 2)  # this producer does not sign
    app.conf.signing_keys = [KEY]
    try:
        signed = taskapp.add.delay(3, 4)
        assert signed.get(timeout=20) == 7
        message = app.build_message(taskapp.add.name, taskapp.add.options, (5, 6), {})
        good = app.envelope(message)
        altered = Envelope(good.id, good.queue, good.body.replace(b"[5,6]", b"[5,7]"))
        app.broker.publish([altered])
        reasons = _reasons(app, 2)
    finally:
        app.conf.signing_keys = []
    assert "unsigned message refused" in reasons[unsigned.id]
    assert "does not match" in reasons[altered.id]
    assert app.AsyncResult(altered.id).status is State.UNKNOWN  # refused unread, no record
