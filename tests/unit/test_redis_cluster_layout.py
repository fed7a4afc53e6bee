"""The Redis store's cluster variant without a cluster: URLs and their masking, the WAIT
options, command routing, and the rule that no call mixes hash slots (checked on the calls the
store would send). WAIT itself is tested against the shared server, which has no replica.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from redis.crc import key_slot

from conveyor.brokers import Envelope, ResultWrite, StoredResult, open_store
from conveyor.brokers import redis_scripts as lua
from conveyor.brokers.base import Claim, Settle
from conveyor.brokers.redis import _parse_target, _Plans
from conveyor.brokers.redis_cluster import command_key, stage_ranges
from conveyor.errors import ConfigurationError, NotReplicated
from tests.stores import REDIS_HOST, REDIS_PORT, drop_redis_prefix, redis_up, unavailable

SECRET = "s3cret-Pa55"


@pytest.mark.parametrize("url", [
    f"redis+cluster://app:{SECRET}@h1:7000,h2:7001?prefix=p",
    f"redis://:{SECRET}@h1:7000/0?cluster=true",
    f"rediss://app:{SECRET}@h1:7000?cluster=yes&wait_replicas=1",
])
def test_cluster_urls_are_parsed_and_masked(url: str) -> None:
    target = _parse_target(url, {})
    assert target.cluster_link is not None
    assert SECRET not in target.url and "***" in target.url
    assert target.cluster_link["password"] == SECRET  # given to the pub/sub connections


@pytest.mark.parametrize(("url", "problem"), [
    (f"redis+cluster://:{SECRET}@h1:7000/2", "database 0"),
    (f"redis+cluster://:{SECRET}@h1:7000?decode_responses=1", "unknown options"),
    (f"redis://:{SECRET}@h1:7000?wait_timeout_ms=5", "wait_timeout_ms needs wait_replicas"),
    (f"redis://:{SECRET}@h1:7000?wait_replicas=0", "must be >= 1"),
    (f"redis+cluster://:{SECRET}@h1:7000?wait_replicas=x", "invalid literal"),
])
def test_bad_cluster_urls_are_configuration_errors_without_the_password(
        url: str, problem: str) -> None:
    with pytest.raises(ConfigurationError, match=problem) as caught:
        open_store(url)
    assert SECRET not in str(caught.value)


def test_wait_options_apply_to_every_kind_of_url() -> None:
    for url in ("redis://h/0?wait_replicas=2&wait_timeout_ms=250",
                "redis+sentinel://h:26379/svc?wait_replicas=2&wait_timeout_ms=250",
                "redis+cluster://h:7000?wait_replicas=2&wait_timeout_ms=250"):
        wait = _parse_target(url, {}).wait
        assert wait is not None and wait.command() == ("WAIT", 2, 250)
    assert _parse_target("redis://h/0", {}).wait is None


def test_commands_route_by_their_first_key() -> None:
    assert command_key(("EVALSHA", "sha", 2, "{p:q}:ready", "{p:q}:body", "arg")) == (
        "{p:q}:ready")
    assert command_key(("EVALSHA", "sha", 0, "arg")) is None
    assert command_key(("GET", "p:result:t")) == "p:result:t"
    assert command_key(("PUBLISH", "chan", "")) is None
    assert stage_ranges(5, (2, 4)) == [range(0, 2), range(2, 4), range(4, 5)]
    assert stage_ranges(3, ()) == [range(0, 3)]


def slots(call: Any) -> set[int]:
    args = call.args
    if args[0] == "EVALSHA":
        keys = args[3:3 + int(args[2])]
    elif args[0] in ("GET", "SET", "DEL", "SADD", "SMEMBERS", "EXISTS"):
        keys = args[1:2]
    else:
        keys = args[1:]  # MGET and the like: every argument is a key
    return {key_slot(k.encode() if isinstance(k, str) else k) for k in keys}


def claim(queue: str, attempt: int = 1) -> Claim:
    env = Envelope(id=uuid.uuid4().hex, queue=queue, body=b"x")
    return Claim(env, attempt, "tok", 1)


def result(task_id: str) -> ResultWrite:
    return ResultWrite(task_id, StoredResult(b"1", "SUCCESS", 1, True), 60)


def cluster_ops() -> dict[str, Any]:
    plans = _Plans("p", cluster=True)
    envs = [Envelope(id=f"t{i}", queue=f"q{i % 3}", body=b"x") for i in range(9)]
    records = [(e.id, StoredResult(b"", "PENDING", 0, False)) for e in envs]
    claims = [claim("q0"), claim("q1"), claim("q1")]
    return {
        "publish_tracked": plans.publish_tracked(envs, records, 60),
        "claim": plans.claim({"q0": 5, "q1": 5}, 30.0, record_started=True),
        "ack_with_results": plans.ack([(c, result(c.envelope.id)) for c in claims]),
        "settles": plans.settles([Settle("ack", claims[0], result=result("a")),
                                  Settle("retry", claims[1], result("b"), delay=1.0)]),
        "get_many": plans.get_many([e.id for e in envs]),
    }


@pytest.mark.parametrize("name", sorted(cluster_ops()))
def test_no_cluster_call_mixes_slots(name: str) -> None:
    op = cluster_ops()[name]
    for call in op.calls:
        assert len(slots(call)) == 1, call.args[:6]
        if call.script in (lua.PUBLISH, lua.CLAIM):  # no result records from queue scripts
            result_prefix = call.args[3 + int(call.args[2]) + (1 if call.script is lua.PUBLISH
                                                              else 3)]
            assert result_prefix == ""


def test_results_are_stored_in_a_stage_before_the_settles_that_need_them() -> None:
    for name in ("publish_tracked", "ack_with_results", "settles"):
        op = cluster_ops()[name]
        assert op.durable
        first_queue_call = next(i for i, c in enumerate(op.calls)
                                if c.script not in (None, lua.STORE_RESULT))
        assert any(0 < s <= first_queue_call for s in op.stages), name


@pytest.fixture
def shared_prefix() -> Iterator[str]:
    if not redis_up():
        unavailable(f"Redis at {REDIS_HOST}:{REDIS_PORT}")
    name = f"wtest-{uuid.uuid4().hex[:12]}"
    try:
        yield name
    finally:
        drop_redis_prefix(name)


@pytest.mark.redis
def test_wait_unsatisfied_raises_not_replicated(shared_prefix: str) -> None:
    with redis.Redis(host=REDIS_HOST, port=REDIS_PORT) as plain:
        if int(plain.info("replication").get("connected_slaves", 0)):
            pytest.skip("the shared server has replicas: WAIT 1 would be satisfied")
    store = open_store(f"redis://{REDIS_HOST}:{REDIS_PORT}/0?prefix={shared_prefix}"
                       "&wait_replicas=1&wait_timeout_ms=20")
    try:
        env = Envelope(id="t1", queue="q", body=b"x")
        for _ in range(2):  # repeating is safe: the id is left as it is
            with pytest.raises(NotReplicated, match="0 of 1 replicas within 20 ms") as caught:
                store.publish([env])
            assert store.stats("q").ready == 1  # on the primary, unconfirmed: it may be lost
        assert "failover" in str(caught.value)
        assert store.get("nothing") is None  # reads wait for nobody
    finally:
        store.close()
