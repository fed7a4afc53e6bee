"""FastAPI and Starlette: the lifespan opens and closes the stores, handlers enqueue with
``adelay``, the router answers state, result and errors as JSON, dependencies resolve."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("fastapi")
from fastapi import FastAPI
from fastapi.testclient import TestClient
from starlette.applications import Starlette

from conveyor import Conveyor
from conveyor.contrib.fastapi import ConveyorApp, TaskResult, lifespan, status_router
from conveyor.contrib.starlette import lifespan as starlette_lifespan
from conveyor.contrib.starlette import status_app, status_routes
from conveyor.testing import run_queued
from tests.contrib.webtasks import register
from tests.stores import store_url


@pytest.fixture(params=["sqlite", "redis"])
def app(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Conveyor]:
    with store_url(request.param, tmp_path) as url:
        made = Conveyor("web", broker=url)
        register(made)
        yield made
        made.close()


def web_app(app: Conveyor) -> FastAPI:
    web = FastAPI(lifespan=lifespan(app))
    web.include_router(status_router(app))

    @web.post("/add/{x}/{y}", status_code=202)
    async def add(x: int, y: int, conveyor: ConveyorApp) -> dict[str, str]:
        result = await conveyor.tasks["web.add"].adelay(x, y)
        return {"id": result.id}

    @web.post("/refuse", status_code=202)
    async def refuse() -> dict[str, str]:
        return {"id": (await app.tasks["web.refuse"].adelay("no <b>way</b>")).id}

    @web.get("/ready/{task_id}")
    def ready(result: TaskResult) -> dict[str, Any]:
        return {"ready": result.ready()}

    return web


def test_enqueue_then_follow_the_state(app: Conveyor) -> None:
    with TestClient(web_app(app)) as client:
        answer = client.post("/add/2/3")
        assert answer.status_code == 202
        task_id = answer.json()["id"]
        pending = client.get(f"/tasks/{task_id}").json()
        assert pending["state"] == "PENDING" and pending["ready"] is False
        assert client.get(f"/ready/{task_id}").json() == {"ready": False}
        run_queued(app)
        done = client.get(f"/tasks/{task_id}").json()
        assert done["state"] == "SUCCESS" and done["result"] == 5 and done["error"] is None
        assert done["task"] == "web.add" and done["date_done"].endswith("+00:00")
        assert client.get(f"/ready/{task_id}").json() == {"ready": True}


def test_a_failure_is_json_with_its_error_and_no_traceback(app: Conveyor) -> None:
    with TestClient(web_app(app)) as client:
        task_id = client.post("/refuse").json()["id"]
        run_queued(app, raise_errors=False)
        failed = client.get(f"/tasks/{task_id}").json()
        assert failed["state"] == "FAILURE" and failed["result"] is None
        assert failed["error"]["type"] == "tests.contrib.webtasks.Refused"
        assert failed["error"]["message"] == "no <b>way</b>"
        assert "traceback" not in failed["error"]
        unknown = client.get("/tasks/never-sent").json()
        assert unknown["state"] == "UNKNOWN" and unknown["ready"] is False


def test_the_lifespan_opens_and_closes_the_stores(app: Conveyor) -> None:
    with TestClient(web_app(app)):
        assert app._stores, "the stores should be open while the app runs"
    assert app._stores == {}


def test_a_store_that_cannot_be_reached_fails_the_start() -> None:
    down = Conveyor("down", broker="redis://127.0.0.1:1/0")
    with pytest.raises(Exception, match=r"127\.0\.0\.1:1"), TestClient(web_app(down)):
        pass


def test_starlette_alone_has_the_route_and_the_lifespan(app: Conveyor) -> None:
    web = Starlette(routes=status_routes(app), lifespan=starlette_lifespan(app))
    result = app.tasks["web.blob"].delay()
    run_queued(app)
    with TestClient(web) as client:
        found = client.get(f"/tasks/{result.id}").json()
    assert found["result"] == {"bytes": "fine", "nested": [1, 2.5, None]}
    with TestClient(status_app(app, traceback=True)) as client:
        failed_id = app.tasks["web.refuse"].delay("x").id
        run_queued(app, raise_errors=False)
        error = client.get(f"/tasks/{failed_id}").json()["error"]
    assert "Refused: x" in error["traceback"]


def test_json_safe_turns_what_json_cannot_carry_into_what_it_can() -> None:
    from datetime import UTC, datetime

    from conveyor.contrib.status import json_safe

    assert json_safe({1: b"\x00\x01", "t": (1, {2}), "f": float("nan"),
                      "d": datetime(2030, 1, 1, tzinfo=UTC), "o": object}) == {
        "1": "AAE=", "t": [1, [2]], "f": None, "d": "2030-01-01T00:00:00+00:00",
        "o": "<class 'object'>"}
