"""The guide: every Python sample of docs/*.md runs (see tests/docs/samples.py for the marks),
and ``mkdocs build --strict`` builds the site."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.docs.samples import blocks

ROOT = Path(__file__).resolve().parents[2]
PAGES = sorted(p for p in (ROOT / "docs").glob("*.md") if blocks(p.read_text()))


@pytest.mark.parametrize("page", PAGES, ids=[p.name for p in PAGES])
def test_the_samples_of_the_page_run(page: Path, tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT),
           "CONVEYOR_BROKER_URL": f"sqlite:///{tmp_path}/conveyor.db"}
    done = subprocess.run([sys.executable, "-m", "tests.docs.samples", str(page)],
                          cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=300, check=False)
    assert done.returncode == 0, done.stdout + done.stderr


def test_most_samples_run_and_skips_say_why() -> None:
    every = [(p.name, b) for p in PAGES for b in blocks(p.read_text())]
    skipped = [(name, b.line) for name, b in every if b.mark == "skip"]
    assert all(b.argument for _, b in every if b.mark == "skip")
    assert len(skipped) * 5 <= len(every), skipped  # at most one in five is only shown


def test_mkdocs_builds_strict(tmp_path: Path) -> None:
    pytest.importorskip("mkdocs")
    done = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict",
                           "-f", str(ROOT / "mkdocs.yml"), "-d", str(tmp_path / "site")],
                          cwd=ROOT, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert (tmp_path / "site" / "index.html").exists()
    assert (tmp_path / "site" / "coming-from-celery" / "index.html").exists()
