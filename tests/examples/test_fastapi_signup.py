"""examples/fastapi_signup, run as its README says: a real worker and uvicorn, driven over
HTTP, on SQLite and on Redis."""

from __future__ import annotations

import sys
from pathlib import Path

import httpx
import pytest

from tests.examples.conftest import (
    Processes,
    conveyor,
    free_port,
    picture,
    wait_final,
    wait_http,
)

pytest.importorskip("fastapi")
pytestmark = pytest.mark.slow


def test_signup_answers_202_and_the_tasks_run(env: dict[str, str], processes: Processes,
                                              tmp_path: Path) -> None:
    env = {**env, "SIGNUP_OUT": str(tmp_path / "out")}
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    processes.start(conveyor("worker", "-A", "examples.fastapi_signup.tasks", "-Q",
                             "emails,images", "-c", "2"), env, cwd=tmp_path)
    processes.start([sys.executable, "-m", "uvicorn", "examples.fastapi_signup.app:web",
                     "--port", str(port), "--log-level", "warning"], env, cwd=tmp_path)
    wait_http(base)
    assert "enctype=\"multipart/form-data\"" in httpx.get(base).text

    answer = httpx.post(f"{base}/signup", data={"email": "ann@example.com"},
                        files={"avatar": ("me.jpg", picture(), "image/jpeg")})
    assert answer.status_code == 202
    ids = answer.json()
    mail = wait_final(base, ids["email_task"])
    thumb = wait_final(base, ids["thumbnail_task"])
    assert mail["state"] == "SUCCESS" and mail["result"] == "sent to ann@example.com"
    assert thumb["state"] == "SUCCESS"
    result = thumb["result"]
    assert isinstance(result, dict) and (result["width"], result["height"]) == (128, 96)
    assert (tmp_path / "out" / "mail" / "ann@example.com.eml").exists()
    assert "fetch(\"/tasks/" in httpx.get(f"{base}/status/{ids['thumbnail_task']}").text

    broken = httpx.post(f"{base}/signup", data={"email": "bob@example.com"},
                        files={"avatar": ("x.jpg", b"not a picture", "image/jpeg")})
    failed = wait_final(base, broken.json()["thumbnail_task"])
    assert failed["state"] == "FAILURE" and failed["result"] is None
    error = failed["error"]
    assert isinstance(error, dict) and error["type"] == "PIL.UnidentifiedImageError"
    assert httpx.post(f"{base}/signup", data={"email": "nope"},
                      files={"avatar": ("x.jpg", b"", "image/jpeg")}).status_code == 422
    assert httpx.get(f"{base}/tasks/never-sent").json()["state"] == "UNKNOWN"
