"""examples/django_reports: Django's own test runner (``manage.py test``), whose tests start a
real worker with ``manage.py conveyor worker`` and drive the live server over HTTP."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.examples.conftest import ROOT

pytest.importorskip("django")
pytestmark = pytest.mark.slow
PROJECT = ROOT / "examples" / "django_reports"


def test_the_django_test_runner_passes_against_a_real_worker(
        env: dict[str, str], tmp_path: Path) -> None:
    env = {**env, "REPORTS_DB": str(tmp_path / "db.sqlite3"),
           "REPORTS_TEST_DB": str(tmp_path / "test-db.sqlite3")}
    env.pop("DJANGO_SETTINGS_MODULE", None)
    done = subprocess.run([sys.executable, "manage.py", "test", "reports", "-v", "2",
                           "--noinput"], cwd=PROJECT, env=env, capture_output=True,
                          text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Ran 2 tests" in done.stderr and "OK" in done.stderr
