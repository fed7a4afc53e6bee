"""One Django project per test session, on a private SQLite store (Django's settings are
process-wide); see settings.py."""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("django")


@pytest.fixture(scope="session")
def django_project(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    import django
    from django.core.management import call_command

    here = tmp_path_factory.mktemp("django")
    os.environ["CONVEYOR_TEST_DJANGO_DIR"] = str(here)
    os.environ["CONVEYOR_TEST_DJANGO_BROKER"] = f"sqlite:///{here}/conveyor.db"
    os.environ["DJANGO_SETTINGS_MODULE"] = "tests.contrib.django.settings"
    django.setup()
    call_command("migrate", verbosity=0)
    yield here
    from conveyor.contrib.django import current_app

    current_app().close()


@pytest.fixture
def project(django_project: Path) -> Iterator[Path]:
    from conveyor.contrib.django import current_app
    from conveyor.testing import run_queued

    run_queued(current_app(), raise_errors=False)  # nothing left over from another test
    yield django_project


def stop_worker(proc: subprocess.Popen[bytes]) -> int:
    """SIGTERM a worker started in its own session, SIGKILL its group if it lingers; its exit
    status (0 after a graceful stop)."""
    proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        return proc.wait()
