"""Result-backend contract: the same cases for every store (see tests/contract/conftest.py)."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from typing import Any

import pytest

from conveyor.brokers import ResultBackend, StoredResult
from tests.contract.conftest import needs

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(autouse=True)
def _keeps_results(store: Any) -> None:
    """A broker-only store (RabbitMQ) keeps no results: every case here skips for it."""
    needs(store, ResultBackend, "results")


def rec(state: str, attempt: int, final: bool, data: bytes = b"{}") -> StoredResult:
    return StoredResult(data=data, state=state, attempt=attempt, final=final)


def tid() -> str:
    return str(uuid.uuid4())


async def test_store_and_fetch(store: Any) -> None:
    task = tid()
    assert store.store(task, rec("SUCCESS", 1, True, b'{"v": 42}'), ttl=60)
    assert store.get(task) == rec("SUCCESS", 1, True, b'{"v": 42}')
    assert await store.aget(task) == rec("SUCCESS", 1, True, b'{"v": 42}')


async def test_unknown_id_is_none_and_pending_is_known(store: Any) -> None:
    task = tid()
    assert store.get(tid()) is None
    store.store(task, rec("PENDING", 0, False), ttl=60)
    got = store.get(task)
    assert got is not None and got.state == "PENDING"


async def test_final_outcome_is_never_overwritten(store: Any) -> None:
    task = tid()
    assert await store.astore(task, rec("SUCCESS", 1, True), ttl=60)
    assert not await store.astore(task, rec("FAILURE", 2, True), ttl=60)
    assert not await store.astore(task, rec("STARTED", 3, False), ttl=60)
    assert store.get(task).state == "SUCCESS"


async def test_older_attempt_is_fenced_out(store: Any) -> None:
    task = tid()
    assert await store.astore(task, rec("STARTED", 1, False), ttl=60)
    assert await store.astore(task, rec("STARTED", 2, False), ttl=60)  # redelivered
    assert not await store.astore(task, rec("SUCCESS", 1, True), ttl=60)  # the zombie
    assert await store.astore(task, rec("SUCCESS", 2, True), ttl=60)
    assert store.get(task).attempt == 2


async def test_wait_wakes_on_arrival(store: Any) -> None:
    task = tid()
    store.store(task, rec("STARTED", 1, False), ttl=60)
    timer = threading.Timer(0.3, store.store, (task, rec("SUCCESS", 1, True), 60))
    timer.start()
    started = time.monotonic()
    got = await asyncio.to_thread(store.wait, task, 10)
    assert got is not None and got.final
    assert time.monotonic() - started < 2.0
    timer.join()


async def test_await_final_wakes_on_arrival(store: Any) -> None:
    task = tid()

    async def finish() -> None:
        await asyncio.sleep(0.3)
        await store.astore(task, rec("SUCCESS", 1, True), 60)

    finisher = asyncio.ensure_future(finish())
    got = await store.await_final(task, 10)
    await finisher
    assert got is not None and got.state == "SUCCESS"


async def test_wait_times_out_cleanly(store: Any) -> None:
    task = tid()
    store.store(task, rec("PENDING", 0, False), ttl=60)
    started = time.monotonic()
    got = await store.await_final(task, 0.4)
    assert got is not None and not got.final
    assert 0.35 < time.monotonic() - started < 2.0
    assert await asyncio.to_thread(store.wait, tid(), 0.2) is None


async def test_results_expire(store: Any) -> None:
    task = tid()
    store.store(task, rec("SUCCESS", 1, True), ttl=1)
    assert store.get(task) is not None
    await asyncio.sleep(2.1)
    assert store.get(task) is None


async def test_many_results_in_one_call(store: Any) -> None:
    ids = [tid() for _ in range(50)]
    for i, task in enumerate(ids[:40]):
        store.store(task, rec("SUCCESS", 1, True, str(i).encode()), ttl=60)
    got = store.get_many(ids)
    assert [g.data for g in got[:40] if g] == [str(i).encode() for i in range(40)]
    assert got[40:] == [None] * 10
    assert await store.aget_many(ids[:2]) == got[:2]


async def test_forget(store: Any) -> None:
    task = tid()
    store.store(task, rec("SUCCESS", 1, True), ttl=60)
    store.forget(task)
    assert store.get(task) is None


async def test_counter_counts_each_member_once(store: Any) -> None:
    key = f"chord-{tid()}"
    assert await store.count_member(key, "a", 60) == 1
    assert await store.count_member(key, "b", 60) == 2
    assert await store.count_member(key, "a", 60) == 2  # a redelivered member
    assert await store.count_member(key, "c", 60) == 3
