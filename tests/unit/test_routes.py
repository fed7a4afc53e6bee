"""The ``routes`` setting: a task without a queue of its own goes where the first matching
pattern says; its own queue and the call's win."""

from __future__ import annotations

import pytest

from conveyor import Conveyor
from conveyor.errors import ConfigurationError


def test_routes_pick_the_queue_of_tasks_that_name_none() -> None:
    app = Conveyor("r", broker="memory://routes-unit",
                   routes={"shop.mail.*": "emails", "shop.*": {"queue": "shop"}})

    @app.task(name="shop.mail.welcome")
    def welcome() -> None: ...

    @app.task(name="shop.report")
    def report() -> None: ...

    @app.task(name="shop.mail.own", queue="own")
    def own() -> None: ...

    @app.task(name="other.task")
    def other() -> None: ...

    def queue(task: object, **call: object) -> str:
        return app.build_message(task.name, task.options, (), {}, **call).queue  # type: ignore[attr-defined]

    assert queue(welcome) == "emails" and queue(report) == "shop"
    assert queue(own) == "own" and queue(other) == "default"
    assert queue(welcome, queue="urgent") == "urgent"
    app.conf.routes = {"shop.*": {"queue": 3}}
    with pytest.raises(ConfigurationError, match="routes"):
        queue(report)
