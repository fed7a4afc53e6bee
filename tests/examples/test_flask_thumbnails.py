"""examples/flask_thumbnails, run as its README says: a real worker and ``flask run``, an
upload over HTTP, the status page followed until the thumbnail shows; SQLite and Redis."""

from __future__ import annotations

import io
import re
import sys
import time
from pathlib import Path

import httpx
import pytest
from PIL import Image

from tests.examples.conftest import Processes, conveyor, free_port, picture, wait_http

pytest.importorskip("flask")
pytestmark = pytest.mark.slow


def test_upload_then_the_status_page_shows_the_thumbnail(
        env: dict[str, str], processes: Processes, tmp_path: Path) -> None:
    env = {**env, "THUMBNAILS_DIR": str(tmp_path / "files")}
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    processes.start(conveyor("worker", "-A", "examples.flask_thumbnails.app:conveyor",
                             "-Q", "images", "-c", "1"), env, cwd=tmp_path)
    processes.start([sys.executable, "-m", "flask", "--app", "examples.flask_thumbnails.app",
                     "run", "--port", str(port)], env, cwd=tmp_path)
    wait_http(base)

    sent = httpx.post(f"{base}/upload", files={"picture": ("cat.jpg", picture(800, 400))})
    assert sent.status_code == 303
    page = follow(base + sent.headers["location"])
    assert 'id="state">SUCCESS' in page
    found = re.search(r'src="(/files/[^"]+)"', page)
    assert found is not None
    with Image.open(io.BytesIO(httpx.get(base + found.group(1)).content)) as im:
        assert im.size == (200, 100)
    task_id = sent.headers["location"].rsplit("/", 1)[1]
    assert httpx.get(f"{base}/tasks/{task_id}").json()["result"]["width"] == 200

    bad = httpx.post(f"{base}/upload", files={"picture": ("x.png", b"garbage")})
    assert 'id="error"' in follow(base + bad.headers["location"])


def follow(url: str, timeout: float = 60.0) -> str:
    """Reload the status page as its refresh header does, until the task is final."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        page = httpx.get(url).text
        if 'http-equiv="refresh"' not in page:
            return page
        time.sleep(0.2)
    raise AssertionError(f"{url} still refreshing after {timeout}s")
