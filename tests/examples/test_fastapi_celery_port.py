"""The "Done when" of the guide: testdrivenio/fastapi-celery, a published FastAPI + Celery +
Redis tutorial app, moved to Conveyor by following docs/coming-from-celery.md alone
(examples/fastapi_celery, each changed line says what it was). Its worker and its web app run
as its docker-compose file says, on a private Redis prefix, driven over HTTP; then the app's own
test suite runs against the same worker."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.examples.conftest import ROOT, Processes, celery_final, free_port, wait_final, wait_http
from tests.stores import store_url

pytest.importorskip("fastapi")
pytest.importorskip("jinja2")
pytestmark = [pytest.mark.slow, pytest.mark.redis]
PROJECT = ROOT / "examples" / "fastapi_celery" / "project"


@pytest.fixture
def env(tmp_path: Path) -> Iterator[dict[str, str]]:
    with store_url("redis", tmp_path) as url:
        yield {**os.environ, "CELERY_BROKER_URL": url, "CELERY_RESULT_BACKEND": url,
               "PYTHONPATH": str(PROJECT)}


def test_the_published_tutorial_app_runs_on_conveyor(env: dict[str, str], processes: Processes,
                                                     tmp_path: Path) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log = tmp_path / "celery.log"
    processes.start([sys.executable, "-m", "conveyor", "worker", "-A", "worker.celery",
                     "--loglevel=info", f"--logfile={log}", "-c", "2"], env, cwd=PROJECT)
    processes.start([sys.executable, "-m", "uvicorn", "main:app", "--port", str(port),
                     "--log-level", "warning"], env, cwd=PROJECT)
    wait_http(f"{base}/")

    home = httpx.get(f"{base}/")
    assert home.status_code == 200 and "handleClick(1)" in home.text
    assert "getStatus" in httpx.get(f"{base}/static/main.js").text
    created = httpx.post(f"{base}/tasks", json={"type": 0})  # the README's curl
    assert created.status_code == 200  # the app returns its own JSONResponse: 200, not 201
    task_id = created.json()["task_id"]
    done = wait_final(base, task_id, done=celery_final)
    assert done == {"task_id": task_id, "task_status": "SUCCESS", "task_result": True}
    assert task_id in log.read_text()  # the worker's --logfile, as docker-compose asks
    unknown = httpx.get(f"{base}/tasks/not-a-task").json()
    assert unknown["task_status"] == "UNKNOWN"  # Celery would say PENDING

    own = processes.start([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           "tests/test_tasks.py", "-k",
                           "test_home or test_mock_task or test_task_status"], env, cwd=PROJECT)
    assert own.wait(120) == 0  # test_task is left out: it sleeps 60 s in this process

