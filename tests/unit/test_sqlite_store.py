"""The SQLite store on its own: URL options, pragmas, fencing details, doorbell, error mapping.

The behaviour every store shares is in tests/contract; cases across processes are in
tests/integration/test_sqlite_processes.py.
"""

from __future__ import annotations

import asyncio
import os
import socket
import sqlite3
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from conveyor.brokers import Envelope, QueueStats, StoredResult, open_store
from conveyor.brokers.doorbell import Doorbell
from conveyor.brokers.sqlite import SQLiteStore, parse_url
from conveyor.errors import BrokerError, BrokerUnavailable, ConfigurationError, LeaseLost

pytestmark = pytest.mark.timeout(60)


def env(queue: str = "q", body: bytes = b"x", **kw: Any) -> Envelope:
    return Envelope(id=str(uuid.uuid4()), queue=queue, body=body, **kw)


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SQLiteStore]:
    opened = open_store(f"sqlite:///{tmp_path}/store.db")
    assert isinstance(opened, SQLiteStore)
    yield opened
    await opened.aclose()


def pragma(store: SQLiteStore, name: str) -> Any:
    return store._conns.get().execute(f"PRAGMA {name}").fetchone()[0]


# -- opening ----------------------------------------------------------------------------------


def test_relative_and_absolute_urls(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert parse_url("sqlite:///data/rel.db").path == str(tmp_path / "data" / "rel.db")
    assert parse_url("sqlite:////abs/dir/x.db").path == "/abs/dir/x.db"


def test_file_and_directory_are_created(tmp_path: Path) -> None:
    target = tmp_path / "deep" / "er" / "q.db"
    store = open_store(f"sqlite:///{target}")
    try:
        assert target.exists()
        assert store.url == f"sqlite:///{target}"
    finally:
        store.close()


def test_wal_and_full_sync_by_default(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path}/p.db")
    try:
        assert pragma(store, "journal_mode") == "wal"
        assert pragma(store, "synchronous") == 2  # FULL
        assert pragma(store, "busy_timeout") == 30000
    finally:
        store.close()


async def test_claims_skip_the_fsync_but_leave_the_connection_full(store: SQLiteStore) -> None:
    store.publish([env()])
    claims, _ = await store._claim(["q"], 1, 30)
    assert await store._renew(claims, 30) == set()
    level = await store._acall(lambda conn: conn.execute("PRAGMA synchronous").fetchone()[0])
    assert level == 2


def test_options_from_query_and_keywords(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path}/o.db?synchronous=NORMAL&busy_timeout=1500")
    try:
        assert pragma(store, "synchronous") == 1  # NORMAL
        assert pragma(store, "busy_timeout") == 1500
    finally:
        store.close()
    store = open_store(f"sqlite:///{tmp_path}/o.db?synchronous=NORMAL", synchronous="EXTRA")
    try:
        assert pragma(store, "synchronous") == 3  # EXTRA
    finally:
        store.close()


@pytest.mark.parametrize("url", [
    "sqlite:///x.db?synchronous=OFF",
    "sqlite:///x.db?synchronous=SOMETIMES",
    "sqlite:///x.db?busy_timeout=soon",
    "sqlite:///x.db?colour=blue",
    "sqlite://host/x.db",
    "sqlite://",
])
def test_bad_urls_are_configuration_errors(url: str) -> None:
    with pytest.raises(ConfigurationError):
        parse_url(url)


def test_unusable_path_is_unavailable() -> None:
    with pytest.raises(BrokerUnavailable, match="/dev/null/x"):
        open_store("sqlite:////dev/null/x.db")


def test_closed_store_and_foreign_process_are_refused(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path}/c.db")
    store._pid = -1  # as if inherited through fork
    with pytest.raises(BrokerError, match="open_store again"):
        store.stats("q")
    store._pid = os.getpid()
    store.close()
    with pytest.raises(BrokerError, match="closed"):
        store.publish([env()])


async def test_close_lets_queued_settles_finish(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/q.db"
    store = open_store(url)
    store.publish([env()])
    (claim,), _ = await store._claim(["q"], 1, 30)
    acking = asyncio.ensure_future(store._settle_ack(claim))
    await asyncio.sleep(0)  # handed to the worker thread
    await store.aclose()
    await acking
    reopened = open_store(url)
    try:
        assert reopened.stats("q") == QueueStats("q", 0, 0, 0, 0)
    finally:
        reopened.close()


# -- messages ---------------------------------------------------------------------------------


async def test_each_claim_gets_its_own_token(store: SQLiteStore) -> None:
    store.publish([env() for _ in range(50)])
    claims, _ = await store._claim(["q"], 50, 30)
    assert len({c.token for c in claims}) == 50
    assert all(c.attempt == 1 for c in claims)


async def test_attempt_grows_across_redelivery_and_retry(store: SQLiteStore) -> None:
    sent = env()
    store.publish([sent])
    first, _ = await store._claim(["q"], 1, 0.05)
    await asyncio.sleep(0.1)  # lease runs out: redelivery
    second, _ = await store._claim(["q"], 1, 30)
    await store._settle_retry(second[0], 0, b"again")
    third, _ = await store._claim(["q"], 1, 30)
    assert [c[0].attempt for c in (first, second, third)] == [1, 2, 3]
    assert third[0].envelope.body == b"again"


async def test_republishing_a_stored_id_leaves_the_message_alone(store: SQLiteStore) -> None:
    sent = env()
    store.publish([sent])
    store.publish([sent])  # the same id twice while queued: one job
    (held,), _ = await store._claim(["q"], 5, 30)
    store.publish([Envelope(id=sent.id, queue="q", body=b"other")])  # and while held
    assert (await store._claim(["q"], 5, 30))[0] == []
    assert held.envelope.body == b"x"
    await store._settle_ack(held)  # its holder's lease was kept
    assert store.stats("q").ready == store.stats("q").in_flight == 0


async def test_undecodable_bodies_are_just_bytes(store: SQLiteStore) -> None:
    garbage = bytes(range(256)) + b"\xff\xfe\x00{not json"
    store.publish([env(body=garbage, content_type="application/json")])
    (claim,), _ = await store._claim(["q"], 1, 30)
    assert claim.envelope.body == garbage
    await store._settle_dead(claim, "undecodable body")
    (dead,) = store.dead_letters()
    assert dead.envelope.body == garbage
    assert dead.failed_at == pytest.approx(time.time(), abs=5)


async def test_next_due_time_is_the_earliest_eta_or_foreign_lease(store: SQLiteStore) -> None:
    eta = time.time() + 60
    store.publish([env(eta=eta), env()])
    held, next_at = await store._claim(["q"], 1, 10)
    assert len(held) == 1
    assert next_at == pytest.approx(time.time() + 10, abs=1)
    claims, next_at = await store._claim(["q"], 5, 10)
    assert claims == []
    assert next_at == pytest.approx(time.time() + 10, abs=1)
    await store._settle_ack(held[0])
    assert (await store._claim(["q"], 5, 10)) == ([], eta)
    assert (await store._claim(["elsewhere"], 5, 10)) == ([], None)


async def test_acked_elsewhere_is_lease_lost_but_own_repeat_is_not(store: SQLiteStore) -> None:
    store.publish([env()])
    zombie, _ = await store._claim(["q"], 1, 0.05)
    await asyncio.sleep(0.1)
    holder, _ = await store._claim(["q"], 1, 30)
    await store._settle_ack(holder[0])
    await store._settle_ack(holder[0])  # the same delivery again: no-op
    with pytest.raises(LeaseLost):
        await store._settle_ack(zombie[0])  # the row is gone, but not by its hand
    with pytest.raises(LeaseLost):
        await store._settle_release(zombie[0])


async def test_expired_lease_still_settles_while_nobody_took_over(store: SQLiteStore) -> None:
    store.publish([env()])
    late, _ = await store._claim(["q"], 1, 0.05)
    await asyncio.sleep(0.1)
    assert store.stats("q").ready == 1
    assert await store._renew(late, 30) == set()  # nobody else claimed it: still ours
    assert store.stats("q").in_flight == 1
    await store._settle_ack(late[0])
    assert store.stats("q").in_flight == 0


async def test_retry_goes_behind_waiting_messages(store: SQLiteStore) -> None:
    store.publish([env(body=b"a"), env(body=b"b")])
    (a,), _ = await store._claim(["q"], 1, 30)
    await store._settle_retry(a, 0, None)
    claims, _ = await store._claim(["q"], 2, 30)
    assert [c.envelope.body for c in claims] == [b"b", b"a"]


async def test_replay_keeps_attempt_and_goes_to_the_back(store: SQLiteStore) -> None:
    store.publish([env(body=b"bad")])
    (bad,), _ = await store._claim(["q"], 1, 30)
    await store._settle_dead(bad, "boom")
    store.publish([env(body=b"next")])
    assert store.replay_dead(queue="q") == 1
    claims, _ = await store._claim(["q"], 2, 30)
    assert [(c.envelope.body, c.attempt) for c in claims] == [(b"next", 1), (b"bad", 2)]


async def test_cancelled_claim_gives_its_messages_back(store: SQLiteStore) -> None:
    store.publish([env() for _ in range(3)])
    claiming = asyncio.ensure_future(store._claim(["q"], 3, 60))
    await asyncio.sleep(0)
    claiming.cancel()
    with pytest.raises(asyncio.CancelledError):
        await claiming
    await store._acall(lambda conn: None)  # the worker thread ran the orphaned claim
    claims: list[Any] = []
    for _ in range(500):
        claims, _ = await store._claim(["q"], 3, 60)
        if claims:
            break
        await asyncio.sleep(0.01)
    assert [c.attempt for c in claims] == [2, 2, 2]  # claimed once, given back, claimed again


async def test_queues_lists_every_state(store: SQLiteStore) -> None:
    store.publish([env("ready"), env("later", eta=time.time() + 60), env("held"), env("dead")])
    await store._claim(["held"], 1, 30)
    (dead,), _ = await store._claim(["dead"], 1, 30)
    await store._settle_dead(dead, "x")
    assert store.queues() == ["dead", "held", "later", "ready"]


async def test_bulk_publish_is_one_transaction(store: SQLiteStore) -> None:
    clash = env()
    store.publish([clash])
    bad = Envelope(id=str(uuid.uuid4()), queue="q", body=b"", content_type=None)  # type: ignore[arg-type]
    with pytest.raises(BrokerError):
        store.publish([env(), env(), bad])
    assert store.stats("q").ready == 1


async def test_without_doorbell_consumers_still_get_work(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path}/quiet.db?doorbell=off")
    try:
        consumer = store.consume(["q"], prefetch=1, lease=30)
        taking = asyncio.ensure_future(anext(consumer))
        await asyncio.sleep(0.2)
        store.publish([env(body=b"polled")])
        got = await asyncio.wait_for(taking, 3)
        assert got.envelope.body == b"polled"
        await got.ack()
        await consumer.close()
        assert not (tmp_path / "quiet.db.bell").exists()
    finally:
        await store.aclose()


# -- results ----------------------------------------------------------------------------------


def rec(state: str, attempt: int, final: bool) -> StoredResult:
    return StoredResult(b"\x93\x01\x02", state, attempt, final)


async def test_expired_result_counts_as_absent_for_fencing(store: SQLiteStore) -> None:
    assert store.store("t", rec("SUCCESS", 5, True), ttl=0.05)
    await asyncio.sleep(0.1)
    assert store.get("t") is None
    assert store.store("t", rec("STARTED", 1, False), ttl=60)
    assert store.get("t") == rec("STARTED", 1, False)


async def test_get_many_keeps_order_and_duplicates(store: SQLiteStore) -> None:
    ids = [f"id-{i}" for i in range(3000)]
    for task in ids[::2]:
        store.store(task, rec("SUCCESS", 1, True), ttl=60)
    got = store.get_many([*ids, ids[0]])
    assert [g is not None for g in got] == [i % 2 == 0 for i in range(3000)] + [True]
    assert store.get_many([]) == []


async def test_members_count_concurrent_adders_once(store: SQLiteStore) -> None:
    counts = await asyncio.gather(*(store.count_member("k", f"m{i % 10}", 60) for i in range(40)))
    assert sorted(set(counts)) == list(range(1, 11))
    assert await store.count_member("k", "m0", 60) == 10


async def test_expired_rows_are_swept(store: SQLiteStore) -> None:
    store.store("old", rec("SUCCESS", 1, True), ttl=0.01)
    await store.count_member("gone", "a", 0.01)
    await asyncio.sleep(0.05)
    store._last_sweep = 0.0
    store.store("new", rec("SUCCESS", 1, True), ttl=60)
    conn = store._conns.get()
    assert conn.execute("SELECT count(*) FROM results").fetchone()[0] == 1
    assert conn.execute("SELECT count(*) FROM members").fetchone()[0] == 0


# -- doorbell ---------------------------------------------------------------------------------


def test_doorbell_with_a_path_too_long_for_a_socket_address(tmp_path: Path) -> None:
    directory = tmp_path / ("d" * 150) / "bell"
    bell = Doorbell(str(directory))
    listener = bell.listen("q")
    try:
        assert not listener.wait(0)
        bell.ring("q")
        assert listener.wait(1)
        assert not listener.wait(0)  # rings are consumed
    finally:
        listener.close()
        bell.close()
    assert os.listdir(directory) == []


def test_doorbell_rings_only_its_channel_and_removes_dead_sockets(tmp_path: Path) -> None:
    bell = Doorbell(str(tmp_path / "bell"))
    results = bell.listen("r")
    dead = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    dead.bind(str(tmp_path / "bell" / "q-1-dead"))
    dead.close()  # its process died: the file stays, nobody listens
    try:
        bell.ring("q")
        assert not results.wait(0)
        assert sorted(os.listdir(tmp_path / "bell")) == [results.name]
    finally:
        results.close()
        bell.close()


def test_full_socket_does_not_block_the_ringer(tmp_path: Path) -> None:
    bell = Doorbell(str(tmp_path / "bell"))
    listener = bell.listen("q")
    try:
        started = time.monotonic()
        for _ in range(5000):
            bell.ring("q")
        assert time.monotonic() - started < 5
        assert listener.wait(0)
    finally:
        listener.close()
        bell.close()


async def test_sqlite_driver_errors_become_broker_errors(store: SQLiteStore) -> None:
    def broken(conn: sqlite3.Connection) -> None:
        conn.execute("SELECT * FROM no_such_table")

    with pytest.raises(BrokerError, match="store") as caught:
        store._call(broken)
    assert isinstance(caught.value.__cause__, sqlite3.Error)
    assert not isinstance(caught.value, BrokerUnavailable)


async def test_a_layout_1_file_is_upgraded_in_place_and_keeps_its_messages(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    conn = sqlite3.connect(path)
    conn.executescript("""
        PRAGMA journal_mode=WAL;
        CREATE TABLE messages (seq INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE,
            queue TEXT NOT NULL, body BLOB NOT NULL, content_type TEXT NOT NULL,
            priority INTEGER NOT NULL, eta REAL, state INTEGER NOT NULL,
            attempt INTEGER NOT NULL DEFAULT 0, token TEXT, lease_until REAL, reason TEXT,
            failed_at REAL);
        INSERT INTO messages (seq, id, queue, body, content_type, priority, state, attempt)
            VALUES (1, 'old-1', 'q', x'6f6c64', 'application/json', 0, 0, 2);
        PRAGMA user_version=1;
    """)
    conn.close()
    store = open_store(f"sqlite:///{path}")
    try:
        consumer = store.consume(["q"], prefetch=1, lease=30)  # type: ignore[union-attr]
        got = await asyncio.wait_for(anext(consumer), 5)
        assert (got.envelope.id, got.envelope.body, got.attempt, got.deliveries) == (
            "old-1", b"old", 3, 1)
        await got.ack()
        await consumer.close()
    finally:
        await store.aclose()
    assert sqlite3.connect(path).execute("PRAGMA user_version").fetchone()[0] == 2
