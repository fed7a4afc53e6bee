"""The outbox in-process: rows follow the SQLAlchemy transaction, a relay thread is woken by
the commit, one relay leads at a time, bad calls are refused in the producer."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("sqlalchemy")
from sqlalchemy import create_engine
from sqlalchemy.orm import Session

from conveyor import Conveyor
from conveyor.contrib.outbox import Outbox
from conveyor.contrib.outbox.sqlalchemy import SQLAlchemyStore
from conveyor.errors import ConfigurationError, SerializationError
from conveyor.states import State
from conveyor.testing import run_queued


@pytest.fixture
def outbox(tmp_path: Path) -> Outbox:
    app = Conveyor("obx", broker=f"sqlite:///{tmp_path}/c.db")

    @app.task(name="obx.double")
    def double(x: int) -> int:
        return 2 * x

    store = SQLAlchemyStore(create_engine(f"sqlite:///{tmp_path}/app.db"))
    store.create_table()
    return Outbox(app, store)


def test_rows_follow_the_transaction_and_a_relay_thread_sends_on_commit(outbox: Outbox) -> None:
    app, double = outbox.app, outbox.app.tasks["obx.double"]
    engine = outbox.store.engine  # type: ignore[attr-defined]
    relay = outbox.relay(interval=30.0).start()  # only a commit wakes it before 30 s
    try:
        with pytest.raises(RuntimeError), Session(engine) as session, session.begin():
            outbox.send(double.s(1), session)
            raise RuntimeError("roll back")
        assert outbox.store.pending(10) == []
        with Session(engine) as session, session.begin():
            sent = outbox.send(double.s(21), session)
            assert sent.status is State.UNKNOWN
        _wait(lambda: sent.status is State.PENDING)
        run_queued(app)
        assert sent.get(timeout=5) == 42 and outbox.store.pending(10) == []
    finally:
        relay.stop()
        app.close()


def test_one_relay_leads_at_a_time(outbox: Outbox) -> None:
    from conveyor.contrib.outbox import Relay

    app, double = outbox.app, outbox.app.tasks["obx.double"]
    with Session(outbox.store.engine) as session, session.begin():  # type: ignore[attr-defined]
        outbox.send_many([double.s(1), double.s(2)], session)
    first, second = Relay(app, outbox.store), Relay(app, outbox.store)
    assert first.relay_once() == 2
    with Session(outbox.store.engine) as session, session.begin():  # type: ignore[attr-defined]
        outbox.send(double.s(3), session)
    assert second.relay_once() == 0 and len(outbox.store.pending(10)) == 1
    first._release()
    assert second.relay_once() == 1
    app.close()


def test_bad_calls_are_refused_in_the_producer(outbox: Outbox) -> None:
    double = outbox.app.tasks["obx.double"]
    with Session(outbox.store.engine) as session:  # type: ignore[attr-defined]
        with pytest.raises(SerializationError, match=r"obx\.double"):
            outbox.send(double.s(object()), session)
        with pytest.raises(ConfigurationError, match="callbacks"):
            outbox.send(double.s(1).link(double.s()), session)
        with pytest.raises(TypeError, match="session"):
            outbox.send(double.s(1))
    outbox.app.close()


def _wait(check: object, timeout: float = 30.0) -> None:
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():  # type: ignore[operator]
            return
        time.sleep(0.02)
    raise AssertionError("condition not met")
