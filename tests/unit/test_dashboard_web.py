"""The dashboard's web app in-process (Starlette's test client) on a memory store: the bind
and Host rules, logins, and list pages over 100,000 indexed tasks."""

from __future__ import annotations

import base64
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("starlette")
pytest.importorskip("httpx")

from starlette.testclient import TestClient

from conveyor import Conveyor
from conveyor.dashboard import build
from conveyor.dashboard.charts import chart
from conveyor.dashboard.security import Auth, check_bind, host_allowed, is_loopback
from conveyor.errors import ConfigurationError
from tests.unit.test_dashboard_index import numbered, task_events


def test_only_loopback_binds_without_a_login() -> None:
    for host in ("127.0.0.1", "127.8.9.1", "localhost", "::1", "[::1]"):
        assert is_loopback(host)
        check_bind(host, Auth())
    for host in ("0.0.0.0", "192.168.1.5", "::", "example.com"):
        assert not is_loopback(host)
        with pytest.raises(ConfigurationError, match="without authentication"):
            check_bind(host, Auth())
        check_bind(host, Auth(token="t"))


def test_host_names_without_a_login() -> None:
    for header in ("127.0.0.1:5555", "localhost:5555", "[::1]:5555", "localhost"):
        assert host_allowed(header, Auth())
    for header in ("evil.example:5555", "10.0.0.1:5555", ""):
        assert not host_allowed(header, Auth())
    assert host_allowed("dash.example.com", Auth(user="u", password="p"))


def test_a_user_without_a_password_is_a_clear_error() -> None:
    with pytest.raises(ConfigurationError, match="set both CONVEYOR_DASHBOARD_USER"):
        Auth.from_environment({"CONVEYOR_DASHBOARD_USER": "ops"})


def test_basic_and_bearer_checks() -> None:
    auth = Auth(token="tok", user="ops", password="pw")
    basic = "Basic " + base64.b64encode(b"ops:pw").decode()
    assert auth.allows(basic, "") and auth.allows("Bearer tok", "")
    assert auth.allows("", auth.session_value())
    assert not auth.allows("Basic " + base64.b64encode(b"ops:no").decode(), "")
    assert not auth.allows("Bearer nope", "") and not auth.allows("Basic %%%", "")


def test_chart_text_is_escaped() -> None:
    svg = chart("<script>x</script>", [("a&b", [1.0, None, 2.0])])
    assert "<script>" not in svg and "&lt;script&gt;" in svg and "a&amp;b" in svg


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    """A dashboard whose index holds 100,000 finished tasks, one in ten failed."""
    tmp: Path = tmp_path_factory.mktemp("web")
    app = Conveyor("web", broker="memory://dashboard-web")
    web = build(app, tmp / "index.db", environ={})
    index = web.state.dash.index
    n, batch = 0, []
    for i in range(100_000):
        batch += task_events(f"task-{i:06d}", 1000.0 + i, fail=i % 10 == 0, n=i)[2:]
        if len(batch) >= 5000:
            index.apply(numbered(batch, n + 1))
            n, batch = n + len(batch), []
    with TestClient(web, base_url="http://127.0.0.1:5555") as test_client:
        yield test_client
    app.close()


def test_list_pages_over_100k_tasks(client: TestClient) -> None:
    first = client.get("/tasks")
    assert first.status_code == 200 and first.text.count('<tr data-id="') == 50
    assert 'data-id="task-099999"' in first.text
    older = re.search(r'href="(/tasks\?before=\d+)" id="older"', first.text)
    assert older is not None
    second = client.get(older.group(1))
    assert 'data-id="task-099949"' in second.text and 'data-id="task-099950"' not in second.text
    failed = client.get("/tasks?state=FAILURE&before=500")
    assert failed.text.count('<tr data-id="') == 50 and "SUCCESS</span>" not in failed.text
    rows = client.get("/api/tasks?worker=w2&limit=500").json()["tasks"]
    assert len(rows) == 500 and {r["worker"] for r in rows} == {"w2"}
    assert client.get("/tasks?since=not-a-time").status_code == 400


def test_unknown_task_and_foreign_host(client: TestClient) -> None:
    assert client.get("/tasks/no-such-id").status_code == 404
    assert client.get("/", headers={"host": "evil.example"}).status_code == 400
    page = client.get("/")
    assert page.headers["x-frame-options"] == "DENY"
    assert "script-src 'self'" in page.headers["content-security-policy"]
