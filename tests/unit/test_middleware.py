"""The execution seam: users' own middleware sees every hook, in order, with real deliveries."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest

from conveyor import Conveyor, State
from conveyor.message import Message
from conveyor.middleware import Call, Job, Middleware, Verdict
from conveyor.outcome import ErrorInfo
from conveyor.testing import run_queued


class ErrorReporter(Middleware):
    """A Sentry-style reporter: the guide's example."""

    def __init__(self) -> None:
        self.reported: list[tuple[str, str, str]] = []

    async def after_failure(self, job: Job, error: ErrorInfo) -> None:
        self.reported.append((job.name, error.type, error.message))


class Recorder(Middleware):
    def __init__(self) -> None:
        self.seen: list[str] = []

    def before_publish(self, app: Conveyor, message: Message) -> Message:
        self.seen.append(f"before_publish {message.task}")
        return message

    def after_publish(self, app: Conveyor, messages: Sequence[Message]) -> None:
        self.seen.append(f"after_publish {len(messages)}")

    async def before_run(self, job: Job) -> Verdict | None:
        self.seen.append("before_run")
        return None

    async def around_run(self, job: Job, call: Call) -> Any:
        self.seen.append("around_run in")
        value = await call()
        self.seen.append("around_run out")
        return value

    async def after_run(self, job: Job, verdict: Verdict) -> Verdict:
        self.seen.append(f"after_run {verdict.state}")
        return verdict

    async def before_settle(self, job: Job, verdict: Verdict) -> Verdict:
        self.seen.append("before_settle")
        return verdict

    async def after_success(self, job: Job, value: Any) -> None:
        self.seen.append(f"after_success {value}")


class Veto(Middleware):
    """Skips tasks whose first argument is negative, recording nothing."""

    async def before_run(self, job: Job) -> Verdict | None:
        if job.message is not None and job.message.args and job.message.args[0] < 0:
            return Verdict.skip(State.REVOKED)
        return None


def test_a_user_middleware_sees_every_hook_in_order() -> None:
    recorder = Recorder()
    app = Conveyor("t", broker="memory://", middleware=[recorder])

    @app.task(name="double")
    def double(x: int) -> int:
        return 2 * x

    result = double.delay(21)
    run_queued(app)
    assert result.get(timeout=1) == 42
    assert recorder.seen == [
        "before_publish double", "after_publish 1", "before_run",
        "around_run in", "around_run out", "after_run SUCCESS", "before_settle",
        "after_success 42"]


def test_an_error_reporter_hears_of_final_failures_only() -> None:
    reporter = ErrorReporter()
    app = Conveyor("t", broker="memory://")
    app.add_middleware(reporter)

    @app.task(name="broken", retries=1, retry_backoff=0.01, retry_jitter=False)
    def broken() -> None:
        raise RuntimeError("mail server down")

    broken.delay()
    with pytest.raises(RuntimeError):
        run_queued(app)
    assert reporter.reported == [("broken", "RuntimeError", "mail server down")]


def test_before_run_may_settle_without_running() -> None:
    app = Conveyor("t", broker="memory://", middleware=[Veto()])
    ran: list[int] = []

    @app.task
    def record(x: int) -> int:
        ran.append(x)
        return x

    skipped, kept = record.delay(-1), record.delay(1)
    run_queued(app, raise_errors=False)
    assert ran == [1]
    assert skipped.status is State.REVOKED
    assert kept.get(timeout=1) == 1


def test_hooks_a_middleware_does_not_override_are_not_called() -> None:
    app = Conveyor("t", broker="memory://", middleware=[ErrorReporter()])
    chain = app.middleware
    assert all(not isinstance(m, ErrorReporter) for m in chain.admitting + chain.wrapping)
    assert any(isinstance(m, ErrorReporter) for m in chain.observing)


def test_with_result_keeps_every_other_field_of_the_verdict() -> None:
    import dataclasses

    from conveyor.brokers import ResultWrite, StoredResult
    from conveyor.middleware.base import Action

    exc = RuntimeError("boom")
    full = Verdict(Action.RETRY, State.FAILURE, 7, ErrorInfo.from_exception(exc), 1.5, b"body",
                   "why", None, exc)
    assert {f.name for f in dataclasses.fields(Verdict)} == {
        "action", "state", "value", "error", "delay", "body", "reason", "result", "exc"}
    write = ResultWrite("t1", StoredResult(b"x", State.SUCCESS, 1, True), 60.0)
    carried = full.with_result(write)
    assert carried == dataclasses.replace(full, result=write) and carried.exc is exc
