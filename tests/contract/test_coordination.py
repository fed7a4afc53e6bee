"""Coordination values: the same cases for every store that offers them."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest

from conveyor.brokers import Coordination
from tests.contract.conftest import needs

pytestmark = pytest.mark.timeout(30)


def key() -> str:
    return f"k-{uuid.uuid4().hex}"


async def test_put_if_absent_sets_once_and_reports_the_holder(store: Any) -> None:
    needs(store, Coordination, "coordination values")
    k = key()
    assert store.put_if_absent(k, b"first", 30) is None
    assert store.put_if_absent(k, b"second", 30) == b"first"
    assert await store.aput_if_absent(k, b"third", 30) == b"first"
    assert store.get_value(k) == b"first"
    assert await store.aget_value(k) == b"first"


async def test_values_expire_after_their_ttl(store: Any) -> None:
    needs(store, Coordination, "coordination values")
    k = key()
    store.set_value(k, b"short", 0.3)
    assert store.get_value(k) == b"short"
    await asyncio.sleep(0.5)
    assert store.get_value(k) is None
    assert store.put_if_absent(k, b"again", 30) is None


async def test_compare_and_set_renews_releases_and_refuses(store: Any) -> None:
    needs(store, Coordination, "coordination values")
    k = key()
    assert store.compare_and_set(k, None, b"me", 30)  # take while absent
    assert not store.compare_and_set(k, None, b"other", 30)
    assert not store.compare_and_set(k, b"other", b"other", 30)
    assert await store.acompare_and_set(k, b"me", b"me", 30)  # renew
    assert store.compare_and_set(k, b"me", None, 30)  # release
    assert store.get_value(k) is None


async def test_one_of_many_concurrent_takers_wins(store: Any) -> None:
    needs(store, Coordination, "coordination values")
    k = key()
    results = await asyncio.gather(*(store.aput_if_absent(k, str(i).encode(), 30)
                                     for i in range(20)))
    winners = [i for i, held in enumerate(results) if held is None]
    assert len(winners) == 1
    assert store.get_value(k) == str(winners[0]).encode()


async def test_set_and_delete(store: Any) -> None:
    needs(store, Coordination, "coordination values")
    k = key()
    await store.aset_value(k, b"v1", 30)
    store.set_value(k, b"v2", 30)
    assert store.get_value(k) == b"v2"
    await store.adelete_value(k)
    store.delete_value(k)
    assert store.get_value(k) is None


async def test_value_ttl_reads_what_is_left(store: Any) -> None:
    needs(store, Coordination, "coordination values")
    k = key()
    assert store.value_ttl(k) is None
    assert await store.avalue_ttl(k) is None
    store.set_value(k, b"v", 10)
    left = store.value_ttl(k)
    assert left is not None and 8 < left <= 10
    assert store.compare_and_set(k, b"v", b"v", 2)  # a renewal sets what is left
    left = await store.avalue_ttl(k)
    assert left is not None and 1 < left <= 2
    store.set_value(k, b"short", 0.3)
    await asyncio.sleep(0.5)
    assert store.value_ttl(k) is None  # expired: absent
    store.set_value(k, b"v", 30)
    store.delete_value(k)
    assert await store.avalue_ttl(k) is None
