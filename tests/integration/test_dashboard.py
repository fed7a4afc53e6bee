"""The dashboard and the metrics exporter as users run them: ``conveyor dashboard`` and
``conveyor metrics`` processes following real worker processes on SQLite and Redis."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from conveyor import Conveyor, State
from tests.integration import taskapp
from tests.integration.conftest import WITH_AMQP, Workers, wait_for
from tests.monitoring import Server, monitoring_env, wait_json
from tests.stores import drop_redis_prefix, redis_up, unavailable

pytest.importorskip("starlette")
prometheus = pytest.importorskip("prometheus_client.parser")
pytestmark = [pytest.mark.timeout(90), pytest.mark.slow]


@pytest.fixture
def menv(env: dict[str, str]) -> dict[str, str]:
    return monitoring_env(env)


@pytest.fixture(autouse=True)
def sent_events() -> Iterator[None]:
    """This process sends tasks with sent events on, as the dashboard's workers do."""
    taskapp.app.conf.send_sent_events = True
    yield
    taskapp.app.conf.send_sent_events = False


@pytest.fixture
def dashboard(menv: dict[str, str], tmp_path: Path) -> Iterator[Server]:
    server = Server(menv, "--db", str(tmp_path / "index.db"))
    yield server
    server.stop()


@pytest.fixture
def mworkers(menv: dict[str, str]) -> Iterator[Workers]:
    started = Workers(menv)
    yield started
    started.stop_all()


def metric_samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of a Prometheus text exposition, parsed by prometheus-client's parser."""
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in prometheus.text_string_to_metric_families(text)
            for s in family.samples}


def first_update(url: str, headers: dict[str, str] | None = None) -> dict[str, Any]:
    import json

    with httpx.stream("GET", url + "/live", headers=headers or {}, timeout=10) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        for line in response.iter_lines():
            if line.startswith("data: "):
                return json.loads(line[6:])  # type: ignore[no-any-return]
    raise AssertionError("no update on the stream")


@pytest.mark.parametrize("stores", WITH_AMQP, indirect=True)
def test_pages_follow_real_workers(app: Conveyor, dashboard: Server,
                                   mworkers: Workers) -> None:
    mworkers.start("-c", "1", "-n", "w-pages")
    client = httpx.Client(base_url=dashboard.url, timeout=10)
    wait_json(client, "/api/workers", lambda ws: any(w["online"] for w in ws))
    ok, bad = taskapp.add.delay(2, 3), taskapp.always_fails.delay()
    assert ok.get(timeout=20) == 5
    found = wait_json(client, "/api/tasks", lambda v: {t["state"] for t in v["tasks"]} >= {
        "SUCCESS", "FAILURE"})
    rows = {t["id"]: t for t in found["tasks"]}  # type: ignore[index]
    assert rows[ok.id]["worker"] == "w-pages" and rows[ok.id]["result"] == "5"
    for path in ("/", "/workers", "/queues", "/tasks", "/tasks?state=FAILURE"):
        page = client.get(path)
        assert page.status_code == 200, path
    assert "w-pages" in client.get("/workers").text
    task_page = client.get(f"/tasks/{bad.id}").text
    assert "ValueError" in task_page and "this task always fails" in task_page
    assert "Traceback (most recent call last)" in task_page
    assert ok.id not in client.get("/tasks?state=FAILURE").text
    detail = client.get(f"/api/tasks/{bad.id}").json()
    assert detail["outcome"]["state"] == "FAILURE"
    assert [s["kind"] for s in detail["row"]["timeline"]][:3] == [
        "task-sent", "task-received", "task-started"]

    samples = metric_samples(client.get("/metrics").text)
    assert samples[("conveyor_tasks_total", (("state", "SUCCESS"), ("task", ok_name())))] == 1
    assert samples[("conveyor_tasks_total", (("state", "FAILURE"),
                                             ("task", fails_name())))] == 1
    assert samples[("conveyor_workers_online", ())] == 1
    assert samples[("conveyor_queue_messages", (("queue", "default"), ("status", "dead")))] == 1
    assert samples[("conveyor_task_runtime_seconds_count", (("task", ok_name()),))] == 1
    assert samples[("conveyor_task_queue_wait_seconds_count", (("task", ok_name()),))] == 1
    update = first_update(dashboard.url)
    assert [w["name"] for w in update["workers"] if w["online"]] == ["w-pages"]
    wait_json(client, "/api/overview", lambda v: v["dead"] == 1)  # queue counts: cached 2 s
    taskapp.slow.delay(8.0, "held")  # in flight while it runs, RabbitMQ too (from heartbeats)
    wait_json(client, "/api/overview", lambda v: v["in_flight"] == 1)


def ok_name() -> str:
    return taskapp.add.name


def fails_name() -> str:
    return taskapp.always_fails.name


def test_a_restarted_dashboard_resumes_where_it_stopped(app: Conveyor, menv: dict[str, str],
                                                       mworkers: Workers,
                                                       tmp_path: Path) -> None:
    db = str(tmp_path / "index.db")
    mworkers.start("-c", "1", "-n", "w-resume")
    first = Server(menv, "--db", db)
    try:
        results = [taskapp.add.delay(i, i) for i in range(5)]
        assert [r.get(timeout=20) for r in results] == [0, 2, 4, 6, 8]
        wait_json(httpx.Client(base_url=first.url), "/api/tasks?state=SUCCESS",
                  lambda v: len(v["tasks"]) == 5)
    finally:
        first.stop()
    later = [taskapp.add.delay(i, 10) for i in range(3)]  # while no dashboard runs
    assert [r.get(timeout=20) for r in later] == [10, 11, 12]
    second = Server(menv, "--db", db)
    try:
        client = httpx.Client(base_url=second.url)
        found = wait_json(client, "/api/tasks?state=SUCCESS&limit=100",
                          lambda v: len(v["tasks"]) >= 8)
        assert len(found["tasks"]) == 8  # type: ignore[index]
        timeline = client.get(f"/api/tasks/{results[0].id}").json()["row"]["timeline"]
        assert [s["kind"] for s in timeline] == [
            "task-sent", "task-received", "task-started", "task-succeeded"]  # once each
    finally:
        second.stop()


def csrf_of(client: httpx.Client, path: str) -> str:
    page = client.get(path)
    assert page.status_code == 200, page.text
    found = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert found is not None
    return found.group(1)


@pytest.mark.parametrize("stores", WITH_AMQP, indirect=True)
def test_actions_need_confirmation_and_a_csrf_token(app: Conveyor, dashboard: Server,
                                                    mworkers: Workers) -> None:
    client = httpx.Client(base_url=dashboard.url, timeout=10)
    queued = taskapp.add.apply_async((1, 1), countdown=600)
    wait_json(client, "/api/tasks", lambda v: any(t["id"] == queued.id for t in v["tasks"]))
    confirm = client.get(f"/confirm/revoke?id={queued.id}&next=/tasks/{queued.id}")
    assert f"Revoke task {queued.id}?" in confirm.text
    forged = client.post("/actions/revoke", data={"id": queued.id, "csrf": "guess"})
    assert forged.status_code == 403 and app.AsyncResult(queued.id).status is State.PENDING
    token = csrf_of(client, f"/confirm/revoke?id={queued.id}")
    other_site = client.post("/actions/revoke", data={"id": queued.id, "csrf": token},
                             headers={"origin": "http://evil.example"})
    assert other_site.status_code == 403 and app.AsyncResult(queued.id).status is State.PENDING
    done = client.post("/actions/revoke", data={"id": queued.id, "csrf": token,
                                                "next": f"/tasks/{queued.id}"})
    assert done.status_code == 303 and "notice=revoked" in done.headers["location"]
    assert app.AsyncResult(queued.id).status is State.REVOKED
    wait_json(client, f"/api/tasks/{queued.id}", lambda v: v["row"]["state"] == "REVOKED")

    failed = taskapp.always_fails.delay()
    mworkers.start("-c", "1", "-n", "w-actions")
    wait_for(lambda: app.AsyncResult(failed.id).status is State.FAILURE, 20)
    wait_for(lambda: app.broker.stats("default").dead == 1, 10)  # type: ignore[attr-defined]
    retried = client.post("/actions/retry", data={"id": failed.id, "csrf": token,
                                                  "queue": "default"})
    assert "notice=sent" in retried.headers["location"]
    wait_json(client, f"/api/tasks/{failed.id}", lambda v: [
        s["kind"] for s in v["row"]["timeline"]].count("task-failed") == 2, 20)
    # a broker apart from the result backend dead-letters just after the failure is stored
    wait_for(lambda: app.broker.stats("default").dead == 1, 10)  # type: ignore[attr-defined]
    purged = client.post("/actions/purge-dlq", data={"queue": "default", "csrf": token})
    assert "purged+1+dead+letter" in purged.headers["location"]
    waiting = taskapp.add.apply_async((2, 2), countdown=600)
    emptied = client.post("/actions/purge-queue", data={"queue": "default", "csrf": token})
    assert "purged+2+waiting" in emptied.headers["location"]  # this one and the revoked one
    assert app.AsyncResult(waiting.id).status is State.PENDING  # purge drops messages only


@pytest.fixture
def secret_env(env: dict[str, str]) -> Iterator[dict[str, str]]:
    """A Redis URL with a password in it (the local server accepts any for its default
    user), to check that it shows nowhere."""
    if not redis_up():
        unavailable("Redis at 127.0.0.1:6379")
    prefix = f"ctest-{uuid.uuid4().hex[:12]}"
    url = f"redis://default:s3cret-Pw-{prefix}@127.0.0.1:6379/0?prefix={prefix}"
    try:
        yield monitoring_env({**env, "CONVEYOR_BROKER_URL": url})
    finally:
        drop_redis_prefix(prefix)


@pytest.mark.parametrize("stores", ["sqlite"], indirect=True)
def test_no_password_in_any_page_json_or_stream(secret_env: dict[str, str],
                                                tmp_path: Path) -> None:
    secret = secret_env["CONVEYOR_BROKER_URL"].split(":")[2].split("@")[0]
    workers = Workers(secret_env)
    server = Server(secret_env, "--db", str(tmp_path / "index.db"))
    try:
        workers.start("-c", "1", "-n", "w-secret")
        client = httpx.Client(base_url=server.url, timeout=10)
        wait_json(client, "/api/workers", lambda ws: any(w["online"] for w in ws))
        sender = Conveyor("itest", broker=secret_env["CONVEYOR_BROKER_URL"])
        done = sender.send_task(taskapp.always_fails.name)
        wait_json(client, "/api/tasks", lambda v: any(
            t["id"] == done.id and t["state"] == "FAILURE" for t in v["tasks"]))
        shown = [client.get(p).text for p in (
            "/", "/workers", "/queues", "/tasks", f"/tasks/{done.id}", "/api/overview",
            "/api/workers", "/api/tasks", f"/api/tasks/{done.id}", "/metrics",
            "/confirm/purge-queue?queue=default", "/static/dashboard.js")]
        shown.append(str(first_update(server.url)))
        assert "default:***@127.0.0.1:6379" in shown[0]  # the footer names the masked URL
        for text in shown:
            assert secret not in text
        sender.close()
    finally:
        workers.stop_all()
        assert secret not in server.stop()


@pytest.mark.parametrize("stores", ["sqlite"], indirect=True)  # no store in play
def test_a_public_address_needs_a_login_a_token_gives(menv: dict[str, str], tmp_path: Path) -> None:
    import subprocess
    import sys

    from tests.monitoring import APP, ROOT

    refused = subprocess.run(
        [sys.executable, "-m", "conveyor", "dashboard", "-A", APP, "--host", "0.0.0.0",
         "--port", "1", "--db", str(tmp_path / "i.db")], env=menv, cwd=ROOT,
        capture_output=True, text=True, timeout=30, check=False)
    assert refused.returncode != 0
    assert "refusing to serve the dashboard on 0.0.0.0 without authentication" in (
        refused.stderr + refused.stdout)

    token_env = {**menv, "CONVEYOR_DASHBOARD_TOKEN": "tok-" + uuid.uuid4().hex}
    token = token_env["CONVEYOR_DASHBOARD_TOKEN"]
    server = Server(token_env, "--db", str(tmp_path / "t.db"), ready_path="/login")
    try:
        anon = httpx.Client(base_url=server.url)
        assert anon.get("/api/overview").status_code == 401
        assert anon.get("/metrics").status_code == 401
        assert anon.get("/", headers={"accept": "text/html"}).headers["location"] == "/login"
        bearer = {"authorization": f"Bearer {token}"}
        assert anon.get("/api/overview", headers=bearer).status_code == 200
        assert first_update(server.url, bearer)["overview"]["workers_online"] == 0
        csrf = csrf_of(anon, "/login")
        assert anon.post("/login", data={"token": "wrong", "csrf": csrf}).status_code == 401
        logged = anon.post("/login", data={"token": token, "csrf": csrf})
        assert logged.status_code == 303
        assert token not in str(anon.cookies)  # the cookie holds a digest, not the token
        assert anon.get("/workers").status_code == 200
    finally:
        server.stop()


@pytest.mark.parametrize("stores", ["sqlite"], indirect=True)  # no store in play
def test_basic_auth_on_a_public_address(menv: dict[str, str], tmp_path: Path) -> None:
    basic_env = {**menv, "CONVEYOR_DASHBOARD_USER": "ops",
                 "CONVEYOR_DASHBOARD_PASSWORD": "pw-" + uuid.uuid4().hex}
    server = Server(basic_env, "--host", "0.0.0.0", "--db", str(tmp_path / "b.db"),
                    ready_path="/login")
    try:
        refused_page = httpx.get(server.url + "/tasks")
        assert refused_page.status_code == 401 and "Basic" in refused_page.headers[
            "www-authenticate"]
        auth = ("ops", basic_env["CONVEYOR_DASHBOARD_PASSWORD"])
        assert httpx.get(server.url + "/tasks", auth=auth).status_code == 200
        assert httpx.get(server.url + "/tasks", auth=("ops", "nope")).status_code == 401
    finally:
        server.stop()


@pytest.mark.parametrize("stores", ["sqlite"], indirect=True)  # no store in play
def test_without_a_login_only_loopback_host_names_are_answered(dashboard: Server) -> None:
    assert httpx.get(dashboard.url + "/").status_code == 200
    rebound = httpx.get(dashboard.url + "/", headers={"host": "attacker.example:5555"})
    assert rebound.status_code == 400


@pytest.mark.parametrize("stores", WITH_AMQP, indirect=True)
def test_conveyor_metrics_serves_the_same_figures(app: Conveyor, menv: dict[str, str],
                                                  mworkers: Workers) -> None:
    server = Server(menv, command="metrics", ready_path="/metrics")
    try:
        mworkers.start("-c", "1", "-n", "w-metrics")
        results = [taskapp.add.delay(i, 1) for i in range(3)] + [taskapp.flaky.delay(1)]
        assert [r.get(timeout=20) for r in results][:3] == [1, 2, 3]

        def scraped() -> dict[Any, float] | None:
            samples = metric_samples(httpx.get(server.url + "/metrics").text)
            done = samples.get(("conveyor_tasks_total", (("state", "SUCCESS"),
                                                         ("task", ok_name()))))
            retried = (("conveyor_task_retries_total", (("task", taskapp.flaky.name),))
                       in samples)  # events are read in batches: the retry may come later
            return samples if (done == 3 and retried
                               and samples[("conveyor_workers_online", ())]) else None

        samples = wait_for(scraped, 15)
        assert samples[("conveyor_task_retries_total", (("task", taskapp.flaky.name),))] == 1
        assert samples[("conveyor_worker_processes_online", ())] == 1
        assert ("conveyor_queue_messages", (("queue", "default"), ("status", "ready"))) in samples
    finally:
        server.stop()
