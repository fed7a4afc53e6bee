"""The "Done when" of the integrations: a FastAPI + Celery + Redis tutorial-style app moved to
Conveyor by following docs/coming-from-celery.md, run with a real worker (started with
Celery's own option spelling) and uvicorn, driven over HTTP, on Redis and SQLite."""

from __future__ import annotations

import sys
from pathlib import Path

import httpx
import pytest

from tests.examples.conftest import Processes, celery_final, free_port, wait_final, wait_http

pytest.importorskip("fastapi")
pytestmark = pytest.mark.slow


def test_the_ported_tutorial_app_runs(env: dict[str, str], processes: Processes,
                                      tmp_path: Path) -> None:
    url = env["CONVEYOR_BROKER_URL"]
    env = {**env, "CELERY_BROKER_URL": url, "CELERY_RESULT_BACKEND": url}
    env.pop("CONVEYOR_BROKER_URL")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    processes.start([sys.executable, "-m", "conveyor", "worker",
                     "--app=examples.celery_port.worker.celery", "--loglevel=info", "-c", "2"],
                    env, cwd=tmp_path)
    processes.start([sys.executable, "-m", "uvicorn", "examples.celery_port.main:app",
                     "--port", str(port), "--log-level", "warning"], env, cwd=tmp_path)
    wait_http(f"{base}/docs")

    created = httpx.post(f"{base}/tasks", json={"type": 2})
    assert created.status_code == 201
    task_id = created.json()["task_id"]
    done = wait_final(base, task_id, done=celery_final)
    assert done == {"task_id": task_id, "task_status": "SUCCESS", "task_result": True}
    failing = httpx.post(f"{base}/tasks", json={"type": -1}).json()["task_id"]
    failed = wait_final(base, failing, done=celery_final)
    assert failed["task_status"] == "FAILURE"
    assert failed["task_result"] == {"type": "ValueError", "message": "no task of type -1"}
    unknown = httpx.get(f"{base}/tasks/not-a-task").json()
    assert unknown["task_status"] == "UNKNOWN"  # Celery would say PENDING

