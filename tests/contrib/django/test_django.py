"""Django: settings.CONVEYOR, autodiscovered tasks, delay_on_commit, closed connections, the
outbox in the ORM's transaction, and manage.py conveyor running a real worker."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.db import transaction

from conveyor.brokers import queue_admin
from conveyor.contrib.django import current_app
from conveyor.contrib.django.management.commands.conveyor import APP, conveyor_argv
from conveyor.states import State
from conveyor.testing import run_queued
from tests.contrib.django.conftest import stop_worker

ROOT = Path(__file__).resolve().parents[3]


def test_the_app_comes_from_settings_and_finds_every_installed_apps_tasks(
        project: Path) -> None:
    app = current_app()
    assert app.name == "reports" and app.conf.result_ttl == 600
    assert app.broker_url == f"sqlite:///{project}/conveyor.db"
    names = set(app.tasks)
    assert "tests.contrib.django.reports.tasks.note_text" in names
    assert app.tasks["tests.contrib.django.reports.tasks.note_text"].options.queue == "reports"
    assert "tests.contrib.django.reports.tasks.django_add" in names  # django.tasks ones too


def test_delay_on_commit_sends_only_what_was_committed(project: Path) -> None:
    from tests.contrib.django.reports.models import Note
    from tests.contrib.django.reports.tasks import note_text

    app = current_app()
    with transaction.atomic():
        note = Note.objects.create(text="quarterly")
        result = note_text.delay_on_commit(note.pk)
        assert queue_admin(app.broker).stats("reports").ready == 0  # not before the commit
        assert result.status is State.UNKNOWN
    assert result.status is State.PENDING
    with pytest.raises(RuntimeError), transaction.atomic():
        rolled = Note.objects.create(text="never")
        lost = note_text.delay_on_commit(rolled.pk)
        raise RuntimeError("roll back")
    run_queued(app)
    assert result.get(timeout=5) == "quarterly"
    assert lost.status is State.UNKNOWN  # never sent
    outside = note_text.delay_on_commit(note.pk)  # no transaction: sent at once
    run_queued(app)
    assert outside.get(timeout=5) == "quarterly"


def test_database_connections_are_closed_after_each_task(project: Path) -> None:
    from tests.contrib.django.reports.tasks import SEEN_CONNECTIONS, touch_database

    SEEN_CONNECTIONS.clear()
    results = [touch_database.delay(), touch_database.delay()]
    run_queued(current_app())
    assert [r.get(timeout=5) >= 0 for r in results] == [True, True]
    assert len(SEEN_CONNECTIONS) == 2
    assert all(c.connection is None for c in SEEN_CONNECTIONS)  # CONN_MAX_AGE 0: closed


def test_the_outbox_writes_in_the_orm_transaction(project: Path) -> None:
    from conveyor.contrib.outbox import Outbox
    from conveyor.contrib.outbox.django import DjangoStore
    from tests.contrib.django.reports.models import Note
    from tests.contrib.django.reports.tasks import note_text

    outbox = Outbox(current_app(), DjangoStore())
    relay = outbox.relay()
    with pytest.raises(RuntimeError), transaction.atomic():
        outbox.send(note_text.s(Note.objects.create(text="gone").pk))
        raise RuntimeError("roll back")
    assert outbox.store.pending(10) == []
    with transaction.atomic():
        sent = outbox.send(note_text.s(Note.objects.create(text="kept").pk))
    assert sent.status is State.UNKNOWN and len(outbox.store.pending(10)) == 1
    assert relay.relay_once() == 1 and outbox.store.pending(10) == []
    assert relay.relay_once() == 0
    run_queued(current_app())
    assert sent.get(timeout=5) == "kept"


def test_the_management_command_adds_the_app() -> None:
    assert conveyor_argv(["worker", "-Q", "x"]) == ["worker", "-A", APP, "-Q", "x"]
    assert conveyor_argv(["dlq", "list"]) == ["dlq", "list", "-A", APP]
    assert conveyor_argv(["inspect"]) == ["inspect", "-A", APP]
    assert conveyor_argv(["beat", "-A", "x:app"]) == ["beat", "-A", "x:app"]


def test_manage_py_conveyor_worker_runs_committed_tasks(project: Path) -> None:
    from tests.contrib.django.reports.models import Note
    from tests.contrib.django.reports.tasks import django_add, note_text

    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    argv = [sys.executable, "-m", "django", "conveyor", "worker", "-Q", "default,reports",
            "-c", "1", "-l", "warning"]
    worker = subprocess.Popen(argv, env=env, cwd=ROOT, start_new_session=True)
    try:
        with transaction.atomic():
            result = note_text.delay_on_commit(Note.objects.create(text="from a worker").pk)
        native = django_add.enqueue(20, 22)
        assert result.get(timeout=60) == "from a worker"
        found = _wait_finished(native)
        assert found.status == "SUCCESSFUL" and found.return_value == 42
    finally:
        code = stop_worker(worker)
    assert code == 0


def _wait_finished(result: object) -> object:
    import time

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        result.refresh()  # type: ignore[attr-defined]
        if result.is_finished:  # type: ignore[attr-defined]
            return result
        time.sleep(0.1)
    raise AssertionError("the Django task did not finish within 60 s")
