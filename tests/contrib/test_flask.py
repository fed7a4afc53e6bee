"""Flask: the extension reads CONVEYOR_* from app.config, tasks run inside the app context,
the status view answers JSON."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("flask")
from flask import Flask, current_app, g

from conveyor.contrib.flask import Conveyor
from conveyor.testing import run_queued
from tests.stores import store_url


@pytest.mark.parametrize("kind", ["sqlite", "redis"])
def test_tasks_run_in_the_app_context_with_settings_from_app_config(
        kind: str, tmp_path: Path) -> None:
    conveyor = Conveyor()

    @conveyor.task(name="flask.greeting")
    def greeting(who: str) -> str:
        g.seen = True  # the app context's own globals are there
        return f"{current_app.config['GREETING']}, {who} from {current_app.name}"

    @conveyor.task(name="flask.agreeting")
    async def agreeting(who: str) -> str:
        return f"{current_app.config['GREETING']}, {who}"

    with store_url(kind, tmp_path) as url:
        web = Flask("shopfront")
        web.config.update(GREETING="Hello", CONVEYOR_BROKER_URL=url, CONVEYOR_RESULT_TTL=60)
        conveyor.init_app(web)
        web.add_url_rule("/tasks/<task_id>", view_func=conveyor.status_view())
        assert conveyor.broker_url == url and conveyor.conf.result_ttl == 60
        assert web.extensions["conveyor"] is conveyor and conveyor.flask_app is web
        try:
            first, second = greeting.delay("Ann"), agreeting.delay("Bob")
            run_queued(conveyor)
            assert first.get(timeout=5) == "Hello, Ann from shopfront"
            assert second.get(timeout=5) == "Hello, Bob"
            answer = web.test_client().get(f"/tasks/{first.id}").get_json()
            assert answer["state"] == "SUCCESS" and answer["result"] == first.get()
        finally:
            conveyor.close()


def test_conveyor_of_app_and_without_a_flask_app(tmp_path: Path) -> None:
    web = Flask("direct")
    web.config["CONVEYOR_BROKER_URL"] = f"sqlite:///{tmp_path}/c.db"
    conveyor = Conveyor(web)
    assert conveyor.name == "direct" and conveyor.broker_url.endswith("/c.db")

    @conveyor.task
    def needs_context() -> str:
        return str(current_app.name)

    bare = Conveyor(broker=f"sqlite:///{tmp_path}/bare.db")  # never given a Flask app

    @bare.task
    def plain() -> int:
        return 7

    try:
        result = needs_context.delay()
        run_queued(conveyor)
        assert result.get(timeout=5) == "direct"
        other = plain.delay()
        run_queued(bare)
        assert other.get(timeout=5) == 7
    finally:
        conveyor.close()
        bare.close()
