"""The Redis store beyond the shared contract: URLs, key layout, scripts, multi-queue claims,
dead letters across queues, republish, group-committed acks, result TTLs.

Runs against the shared server on 6379 under a private key prefix that is deleted afterwards;
skipped locally (and failed under CI) when that server is not reachable.
"""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import redis
from redis.crc import key_slot

from conveyor.brokers import Envelope, ResultWrite, StoredResult, open_store
from conveyor.brokers import redis_scripts as lua
from conveyor.brokers.base import Claim, Settle
from conveyor.brokers.redis import RedisStore, mask
from conveyor.errors import ConfigurationError, LeaseLost
from tests.stores import REDIS_HOST, REDIS_PORT, drop_redis_prefix, redis_up, unavailable

pytestmark = [pytest.mark.redis, pytest.mark.timeout(30)]

SCRIPTS = [v for v in vars(lua).values() if isinstance(v, lua.Script)]


def env(queue: str = "q", body: bytes = b"x", **kw: Any) -> Envelope:
    return Envelope(id=str(uuid.uuid4()), queue=queue, body=body, **kw)


@pytest.fixture
def prefix() -> Iterator[str]:
    if not redis_up():
        unavailable(f"Redis at {REDIS_HOST}:{REDIS_PORT}")
    name = f"utest-{uuid.uuid4().hex[:12]}"
    try:
        yield name
    finally:
        drop_redis_prefix(name)


@pytest.fixture
async def store(prefix: str) -> AsyncIterator[RedisStore]:
    opened = open_store(f"redis://{REDIS_HOST}:{REDIS_PORT}/0?prefix={prefix}")
    try:
        yield opened
    finally:
        await opened.aclose()


# -- URLs and layout (no server needed) -------------------------------------------------------


@pytest.mark.parametrize(("url", "masked"), [
    ("redis://:pw@h:6379/0", "redis://:***@h:6379/0"),
    ("redis://user:pw@h/1?prefix=app", "redis://user:***@h/1?prefix=app"),
    ("rediss://h:6380/0?ssl_cert_reqs=none", "rediss://h:6380/0?ssl_cert_reqs=none"),
    ("redis+sentinel://:pw@s1:26379,s2:26380/main/2?sentinel_password=spw",
     "redis+sentinel://:***@s1:26379,s2:26380/main/2?sentinel_password=***"),
])
def test_mask_hides_every_password(url: str, masked: str) -> None:
    assert mask(url) == masked


@pytest.mark.parametrize(("url", "problem"), [
    ("redis://127.0.0.1:6379/0?prefix=a{b}", "braces"),
    ("redis+sentinel://:pw@s1:26379,s2:26379", "expected redis\\+sentinel://"),
    ("redis+sentinel://:pw@s1:26379/main?bogus=1", "unknown options"),
    ("redis+sentinel://:pw@s1:x/main", "invalid literal"),
    ("redis://:pw@127.0.0.1:6379/0?bogus=1", "bogus"),
    ("redis://:pw@127.0.0.1:6379/0?socket_timeout=soon", "socket_timeout"),
])
def test_bad_urls_are_configuration_errors_without_the_password(url: str, problem: str) -> None:
    with pytest.raises(ConfigurationError, match=problem) as caught:
        open_store(url)
    assert ":pw@" not in str(caught.value)


def test_every_key_of_a_queue_is_in_one_cluster_slot() -> None:
    for queue in ("q", "emails", "a}b", "{x}", "ünï"):
        keys = lua.queue_keys("app", queue)
        assert set(keys) == set(lua.QUEUE_KEYS)
        assert len({key_slot(k.encode()) for k in keys.values()}) == 1
        assert all(k.startswith(f"{{app:{queue}}}:") for k in keys.values())


def test_queue_scripts_name_only_layout_keys() -> None:
    for script in SCRIPTS:
        assert set(script.keys) <= set(lua.QUEUE_KEYS), script.name
        assert list(script.keys) == [k for k in lua.QUEUE_KEYS if k in script.keys]


def test_each_script_defines_exactly_the_helpers_it_calls() -> None:
    helpers = {name for name, _ in lua._HELPERS if name}
    for script in SCRIPTS:
        defined = set(re.findall(r"local function (\w+)", script.source))
        bodies = re.sub(r"local function \w+", "", script.source)
        called = set(re.findall(r"(\w+)\(", bodies)) & helpers
        assert called <= defined, (script.name, called - defined)
        assert defined & helpers <= called, (script.name, (defined & helpers) - called)
    assert "local function store_record" not in lua.PUBLISH.source  # not every helper everywhere


def test_every_script_compiles_on_the_server(prefix: str) -> None:
    client = redis.Redis(host=REDIS_HOST, port=REDIS_PORT)
    try:
        for script in SCRIPTS:
            assert client.script_load(script.source) == script.sha, script.name
    finally:
        client.close()


# -- broker behaviour beyond the contract -----------------------------------------------------


async def test_several_queues_claim_by_priority_then_queue_order(store: RedisStore) -> None:
    store.publish([env("a", b"a0"), env("b", b"b9", priority=9), env("a", b"a5", priority=5),
                   env("b", b"b0"), env("c", b"c9", priority=9)])
    claims, _ = await store._claim(["a", "b", "c"], 4, 30)
    assert [c.envelope.body for c in claims] == [b"b9", b"c9", b"a5", b"a0"]
    (last,), _ = await store._claim(["a", "b", "c"], 4, 30)
    assert last.envelope.body == b"b0"
    for claim in [*claims, last]:
        await store._settle_ack(claim)


async def test_claim_reports_when_more_becomes_due(store: RedisStore) -> None:
    eta = time.time() + 600
    store.publish([env(eta=eta)])
    claims, next_at = await store._claim(["q"], 1, 30)
    assert claims == [] and next_at == pytest.approx(eta, abs=1e-3)
    store.publish([env()])
    (held,), next_at = await store._claim(["q"], 5, 7)
    assert next_at == pytest.approx(time.time() + 7, abs=1)  # its own lease expiry comes first
    assert held.envelope.eta is None
    await store._settle_ack(held)


async def test_a_publish_writes_pending_only_over_no_record_or_an_earlier_pending(
    store: RedisStore
) -> None:
    fresh, stale, started, final = env(), env(), env(), env()
    store.store(stale.id, StoredResult(b"old", "PENDING", 0, False), 60)
    store.store(started.id, StoredResult(b"", "STARTED", 2, False), 60)
    store.store(final.id, StoredResult(b"42", "SUCCESS", 1, True), 60)
    pending = StoredResult(b"new", "PENDING", 0, False)
    sent = [fresh, stale, started, final]
    store.publish_tracked(sent, [(e.id, pending) for e in sent], 60)
    got = {e.id: store.get(e.id) for e in sent}
    assert got[fresh.id] == pending and got[stale.id] == pending
    assert got[started.id] == StoredResult(b"", "STARTED", 2, False)
    assert got[final.id] == StoredResult(b"42", "SUCCESS", 1, True)
    for claim in (await store._claim(["q"], 4, 30))[0]:
        await store._settle_ack(claim)


async def test_republishing_a_present_id_changes_nothing(store: RedisStore) -> None:
    sent = env(body=b"first")
    store.publish([sent])
    (claim,), _ = await store._claim(["q"], 1, 30)
    store.publish([Envelope(sent.id, "q", b"second")])  # e.g. a producer's retry after a timeout
    assert (await store._claim(["q"], 1, 30))[0] == []
    await store._settle_ack(claim)
    store.publish([Envelope(sent.id, "q", b"again")])  # gone, so this is a new message
    (again,), _ = await store._claim(["q"], 1, 30)
    assert (again.envelope.body, again.attempt) == (b"again", 1)
    await store._settle_ack(again)


async def test_attempt_grows_across_retry_and_redelivery(store: RedisStore) -> None:
    sent = env(body=b"v1", priority=7)
    store.publish([sent])
    (first,), _ = await store._claim(["q"], 1, 0.2)
    await store._settle_retry(first, 0, b"v2")  # no delay: ready at once, same id
    (second,), _ = await store._claim(["q"], 1, 0.2)
    assert (second.envelope.id, second.envelope.body, second.attempt) == (sent.id, b"v2", 2)
    assert second.envelope.priority == 7 and second.envelope.eta is not None
    await asyncio.sleep(0.3)  # its lease runs out
    (third,), _ = await store._claim(["q"], 1, 30)
    assert third.attempt == 3
    with pytest.raises(LeaseLost):
        await store._settle_dead(second, "late")
    await store._settle_release(third)
    (fourth,), _ = await store._claim(["q"], 1, 30)
    assert fourth.attempt == 4
    await store._settle_ack(fourth)


async def _two_leases_and_more(store: RedisStore, more: int
                               ) -> tuple[Claim, Claim, list[Claim]]:
    """A message of queue ``a`` claimed twice (the first lease expired: stale, then current)
    and ``more`` messages of queue ``b`` held."""
    store.publish([env("a"), *(env("b") for _ in range(more))])
    (stale,), _ = await store._claim(["a"], 1, 0.1)
    await asyncio.sleep(0.2)
    (current,), _ = await store._claim(["a"], 1, 30)
    held, _ = await store._claim(["b"], more, 30)
    return stale, current, held


async def test_concurrent_acks_share_round_trips_and_fence_individually(
    store: RedisStore,
) -> None:
    stale, current, held = await _two_leases_and_more(store, 40)
    results = await asyncio.gather(*(store._settle_ack(c) for c in [*held, stale, current]),
                                   return_exceptions=True)
    assert results[:40] == [None] * 40
    assert isinstance(results[40], LeaseLost)
    assert results[41] is None
    for queue in ("a", "b"):
        stats = store.stats(queue)
        assert (stats.ready, stats.in_flight) == (0, 0)


async def test_one_ack_call_of_a_batch_leaves_no_key_of_its_messages(
    store: RedisStore, prefix: str
) -> None:
    stale, current, held = await _two_leases_and_more(store, 20)
    settles = [Settle("ack", c) for c in [current, stale, current, *held]]
    batch = await store._claim_batch(["a"], 0, 30, settles=settles)
    assert batch.settled[0] is None  # acked
    assert batch.settled[1] is None and batch.settled[2] is None  # gone by then: no-ops
    assert batch.settled[3:] == [None] * 20
    client = redis.Redis(host=REDIS_HOST, port=REDIS_PORT)
    try:
        for queue in ("a", "b"):
            keys = lua.queue_keys(prefix, queue)
            assert [client.exists(keys[k]) for k in ("leased", "body", "meta", "att", "dlv",
                                                      "tok")] == [0] * 6, queue
    finally:
        client.close()


async def test_dead_letters_across_queues(store: RedisStore) -> None:
    store.publish([env("a", b"a1"), env("b", b"b1"), env("b", b"b2")])
    for queue, count in (("a", 1), ("b", 2)):
        claims, _ = await store._claim([queue], count, 30)
        for claim in claims:
            await store._settle_dead(claim, f"bad {claim.envelope.body.decode()}")
            await asyncio.sleep(0.002)  # distinct failure times
    dead = store.dead_letters()
    assert [d.reason for d in dead] == ["bad a1", "bad b1", "bad b2"]
    assert [d.envelope.body for d in store.dead_letters(limit=2)] == [b"a1", b"b1"]
    assert store.queues() == ["a", "b"]
    assert store.replay_dead([dead[0].envelope.id, dead[2].envelope.id]) == 2
    assert store.replay_dead([]) == 0
    assert [d.envelope.body for d in store.dead_letters()] == [b"b1"]
    replayed, _ = await store._claim(["a", "b"], 5, 30)
    assert sorted(c.envelope.body for c in replayed) == [b"a1", b"b2"]
    assert all(c.attempt == 2 for c in replayed)
    for claim in replayed:
        await store._settle_ack(claim)
    assert store.purge_dead() == 1
    assert store.queues() == []


async def test_purge_keeps_in_flight_and_dead(store: RedisStore) -> None:
    store.publish([env(), env(), env(eta=time.time() + 60), env()])
    (held,), _ = await store._claim(["q"], 1, 30)
    (doomed,), _ = await store._claim(["q"], 1, 30)
    await store._settle_dead(doomed, "x")
    assert store.purge("q") == 2
    stats = store.stats("q")
    assert (stats.ready, stats.in_flight, stats.delayed, stats.dead) == (0, 1, 0, 1)
    await store._settle_ack(held)


def test_priority_outside_zero_to_nine_is_refused(store: RedisStore) -> None:
    with pytest.raises(ValueError, match="priority"):
        store.publish([env(priority=10)])


# -- results ----------------------------------------------------------------------------------


async def test_store_many_applies_the_fencing_rule_in_one_call(store: RedisStore) -> None:
    done, open_ = str(uuid.uuid4()), str(uuid.uuid4())
    store.store(done, StoredResult(b"1", "SUCCESS", 1, True), 60)
    pending = StoredResult(b"", "PENDING", 0, False)
    store.store_many([(done, pending), (open_, pending)], 60)
    assert store.get(done) == StoredResult(b"1", "SUCCESS", 1, True)
    assert store.get(open_) == pending
    await store.astore_many([(open_, StoredResult(b"", "STARTED", 1, False))], 60)
    assert (await store.aget(open_)) == StoredResult(b"", "STARTED", 1, False)


async def test_results_and_counters_carry_their_ttl(store: RedisStore, prefix: str) -> None:
    task = str(uuid.uuid4())
    store.store(task, StoredResult(b"|with|bars|", "SUCCESS", 3, True), 120)
    assert store.get(task) == StoredResult(b"|with|bars|", "SUCCESS", 3, True)
    assert await store.count_member("chord", "m1", 90) == 1
    client: Any = redis.Redis(host=REDIS_HOST, port=REDIS_PORT)
    try:
        keys = (lua.result_key(prefix, task), lua.member_key(prefix, "chord"))
        ttls = [int(client.pttl(k)) for k in keys]
    finally:
        client.close()
    assert 119_000 < ttls[0] <= 120_000 and 89_000 < ttls[1] <= 90_000
    with pytest.raises(ValueError, match="state"):
        store.store(task, StoredResult(b"", "A|B", 4, False), 60)


async def test_settles_carrying_results_store_first_fenced_by_attempt(
    store: RedisStore,
) -> None:
    sent = [env() for _ in range(20)]
    pending = StoredResult(b"", "PENDING", 0, False)
    await store.apublish_tracked(sent, [(e.id, pending) for e in sent], 60)
    (zombie,), _ = await store._claim(["q"], 1, 0.1)
    await asyncio.sleep(0.2)
    (current,), _ = await store._claim(["q"], 1, 30)
    assert current.envelope.id == zombie.envelope.id
    task = current.envelope.id
    assert await store.astore(task, StoredResult(b"", "STARTED", 2, False), 60)
    late = ResultWrite(task, StoredResult(b"zombie", "SUCCESS", 1, True), 60)
    with pytest.raises(LeaseLost):
        await store._settle_ack_storing(zombie, late)
    rest, _ = await store._claim(["q"], 19, 30)
    done = [current, *rest]
    await asyncio.gather(*(  # concurrent acks with results share round trips
        store._settle_ack_storing(c, ResultWrite(c.envelope.id, StoredResult(
            b"ok", "SUCCESS", c.attempt, True), 60)) for c in done))
    records = store.get_many([e.id for e in sent])
    assert all(r is not None and (r.state, r.data) == ("SUCCESS", b"ok") for r in records)
    assert store.stats("q").in_flight == 0


async def test_many_awaiters_share_one_subscription_connection(store: RedisStore) -> None:
    tasks = [str(uuid.uuid4()) for _ in range(20)]
    waiting = [asyncio.ensure_future(store.await_final(t, 10)) for t in tasks]
    await asyncio.sleep(0.2)
    for task in tasks:
        await store.astore(task, StoredResult(task.encode(), "SUCCESS", 1, True), 60)
    got = await asyncio.wait_for(asyncio.gather(*waiting), 5)
    assert [g.data.decode() for g in got if g] == tasks
