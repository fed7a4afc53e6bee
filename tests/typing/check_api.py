"""Checked by ``mypy --strict`` (see pyproject): the public API's types, as users see them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, assert_type

from conveyor import AsyncResult, AsyncTask, Conveyor, Task
from conveyor.schedule import Schedule, cron, crontab, every

app = Conveyor("typing", broker="memory://")


@app.task(queue="emails", retries=3, retry_backoff=True)
def send_email(user_id: int, message: str) -> str:
    return f"{user_id}:{message}"


@app.task
async def fetch_size(url: str) -> int:
    return len(url)


@app.task(bind=True)
def bound(self: Task[Any, Any], n: int) -> float:
    return n / (self.request.retries + 1)


def check_types() -> None:
    assert isinstance(fetch_size, AsyncTask)
    assert_type(send_email.delay(1, "hi"), AsyncResult[str])
    assert_type(send_email.delay(1, "hi").get(timeout=1), str)
    assert_type(fetch_size.delay("u"), AsyncResult[int])
    assert_type(bound.apply_async((1,), countdown=1), AsyncResult[float])
    assert_type(send_email(1, "x"), str)
    assert_type(app.send_task("x"), AsyncResult[Any])


async def check_async() -> None:
    result = await fetch_size.adelay("u")
    assert_type(await result.aget(timeout=1), int)
    assert_type(await fetch_size("u"), int)


def check_schedules() -> None:
    schedules: list[Schedule] = [every(timedelta(minutes=5)), every(300.0),
                                 cron("0 7 * * *", tz="Europe/Moscow"),
                                 crontab(minute=0, hour={7, 19}, tz="Europe/Moscow")]
    now = datetime.now(UTC)
    for schedule in schedules:
        assert_type(schedule.next_run(now), datetime)
        assert_type(schedule.last_run(now), datetime | None)
        assert_type(schedule.describe(), str)
        assert_type(schedule.key(), str)


@app.task
def add(x: int, y: int) -> int:
    return x + y


@app.task
def total(values: list[int]) -> float:
    return float(sum(values))


def check_canvas() -> None:
    from conveyor import GroupResult, Signature, chain, chord, group, signature

    assert_type(add.s(1, 2), Signature[int])
    assert_type(add.si(1, 2), Signature[int])
    assert_type(add.s(1).set(queue="q", countdown=1, priority=5), Signature[int])
    assert_type(add.s(1, 2).apply_async().get(), int)
    assert_type(chain(add.s(1, 2), add.s(3), send_email.s("x")).apply_async().get(), str)
    assert_type((add.s(1, 2) | add.s(3) | total.s()).delay().get(), float)
    assert_type(group(add.s(i, i) for i in range(3)).apply_async(), GroupResult[int])
    assert_type(group(add.s(1, 1), add.s(2, 2)).apply_async().get(), list[int])
    assert_type(chord(add.s(i, i) for i in range(3))(total.s()).get(), float)
    assert_type(chord([add.s(1, 1)], total.s()).apply_async().get(), float)
    assert_type(signature("shop.add", args=(1, 2), app=app), Signature[Any])
    assert_type(GroupResult.restore("id", app=app), GroupResult[Any] | None)
