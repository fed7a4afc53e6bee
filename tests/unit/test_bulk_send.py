"""``Task.map``: one round trip for many calls, each message as ``delay`` would have built it."""

from __future__ import annotations

import dataclasses

import pytest

from conveyor import Conveyor, State
from conveyor.errors import ConfigurationError
from conveyor.message import Message
from conveyor.middleware import Middleware
from conveyor.testing import run_queued


class Stamp(Middleware):
    """Marks each message it sees with its first argument, as a tracing middleware would."""

    def __init__(self) -> None:
        self.seen: list[str] = []

    def before_publish(self, app: Conveyor, message: Message) -> Message:
        self.seen.append(message.id)
        return dataclasses.replace(message, options={**message.options, "mark": message.args})


def test_map_builds_each_message_as_delay_does() -> None:
    app = Conveyor("bulk", broker="memory://bulk-same", routes={"shop.*": "shop"})

    @app.task(name="shop.add", priority=7, expires=60)
    def add(x: int, y: int) -> int:
        return x + y

    one = app.build_message(add.name, add.options, (1, 2), {})
    many = app.tasks["shop.add"].map([(1, 2), [3, 4]])
    assert app.broker.stats("shop").ready == 2
    assert len(run_queued(app)) == 2 and [r.get(timeout=1) for r in many] == [3, 7]
    built = _messages(app, add.name, [(1, 2), (3, 4)])
    for m in built:
        assert (m.queue, m.priority, m.eta, m.retries, m.kwargs, m.options) == (
            one.queue, one.priority, one.eta, one.retries, one.kwargs, one.options)
        assert m.expires is not None and m.expires == pytest.approx(m.created + 60)
    assert [m.args for m in built] == [(1, 2), (3, 4)]
    assert len({m.id for m in built}) == 2


def test_map_runs_before_publish_for_every_message() -> None:
    stamp = Stamp()
    app = Conveyor("bulk", broker="memory://bulk-hook", middleware=[stamp])

    @app.task(name="echo")
    def echo(x: int) -> int:
        return x

    results = echo.map([(i,) for i in range(5)])
    assert stamp.seen == [r.id for r in results]
    assert all(r.state is State.PENDING for r in results)
    assert len(run_queued(app)) == 5
    assert [r.get(timeout=1) for r in results] == list(range(5))


def test_map_refuses_a_bad_priority_before_sending_any() -> None:
    app = Conveyor("bulk", broker="memory://bulk-bad")

    @app.task(name="noop")
    def noop() -> None: ...

    app.tasks["noop"].options = dataclasses.replace(noop.options, priority=12)
    with pytest.raises(ConfigurationError, match="priority must be an int from 0 to 9, got 12"):
        noop.map([(), ()])
    assert app.broker.stats("default").ready == 0


def _messages(app: Conveyor, name: str, calls: list[tuple[int, int]]) -> list[Message]:
    from conveyor.sending import build_messages

    return build_messages(app, name, app.tasks[name].options, calls)
