"""Workflows in-process on every store: chains, groups, chords, callbacks and nesting, run
through the worker's real execution path (``run_queued``, or a Worker on this event loop)."""

from __future__ import annotations

import asyncio
import collections
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from conveyor import (
    ChordError,
    ConfigurationError,
    Conveyor,
    GroupResult,
    State,
    Task,
    chain,
    chord,
    group,
    signature,
)
from conveyor.canvas import Chain, Chord, Group
from conveyor.middleware import Job, Middleware, Verdict
from conveyor.testing import run_queued
from conveyor.worker import Worker
from tests.stores import PAIRS, STORES, store_urls

pytestmark = pytest.mark.timeout(60)

app = Conveyor("canvas-test", broker="memory://")
#: Runs per (task, token), counted in this process: the tests run every task here.
LEDGER: collections.Counter[tuple[str, str]] = collections.Counter()


@app.task(name="t.add")
def add(x: int, y: int) -> int:
    return x + y


@app.task(name="t.mul")
def mul(x: int, y: int) -> int:
    return x * y


@app.task(name="t.tsum")
def tsum(values: list[int], token: str = "") -> int:
    LEDGER["tsum", token] += 1
    return sum(values)


@app.task(name="t.boom")
def boom(x: int) -> int:
    raise ValueError(f"boom {x}")


@app.task(name="t.note")
def note(value: Any, token: str) -> Any:
    LEDGER["note", token] += 1
    LEDGER[f"note:{value}", token] += 1
    return value


@app.task(name="t.flaky", bind=True, retries=2, retry_backoff=0.01, retry_jitter=False)
def flaky(self: Task[Any, Any], x: int) -> int:
    if self.request.retries < 1:
        raise ConnectionError("once")
    return x


@app.task(name="t.whoami", bind=True)
def whoami(self: Task[Any, Any], *_: Any) -> dict[str, Any]:
    request = self.request
    return {"id": request.id, "parent": request.parent_id, "root": request.root_id,
            "group": request.group_id}


#: Stores that carry both messages and results, and RabbitMQ (a broker only) with Redis.
BOTH_ROLES = [name for name in STORES if name != "amqp"] + PAIRS


@pytest.fixture(params=BOTH_ROLES)
def wf(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Conveyor]:
    """The module's app on fresh private stores of each kind."""
    with store_urls(request.param, tmp_path) as (broker, backend):
        app.broker_url, app.backend_url = broker, backend
        try:
            yield app
        finally:
            app.close()


@pytest.fixture
def mem() -> Iterator[Conveyor]:
    app.broker_url = app.backend_url = f"memory://canvas-{uuid.uuid4().hex}"
    yield app
    app.close()


def token() -> str:
    return uuid.uuid4().hex


def run(wf: Conveyor) -> None:
    run_queued(wf, raise_errors=False)


# -- signatures -------------------------------------------------------------------------------
def test_signatures_partials_options_and_names(mem: Conveyor) -> None:
    partial = add.s(2)
    assert partial.args == (2,) and not partial.immutable and add.si(1, 2).immutable
    assert partial.clone((8,)).args == (8, 2) and add.si(1, 2).clone((8,)).args == (1, 2)
    assert partial(8) == 10  # a plain call, here and now
    options = add.s(1, 2).set(queue="q", countdown=5, priority=7).options
    assert options == {"queue": "q", "countdown": 5, "priority": 7}
    with pytest.raises(ConfigurationError, match=r"unknown option 'queu'.*valid options"):
        add.s(1, 2).set(queu="q")
    by_name = mem.signature("t.add", args=(1, 2))
    assert repr(by_name) == "t.add.s(1, 2)"
    result = by_name.delay()
    assert mem.broker.stats("default").ready == 1
    run(mem)
    assert result.get(timeout=5) == 3
    with pytest.raises(ConfigurationError, match="not bound to an app"):
        signature("t.add", args=(1, 2)).delay()


def test_a_signature_goes_to_its_queue_with_its_priority(mem: Conveyor) -> None:
    sent = add.s(1, 2).set(queue="other", priority=9).apply_async()
    assert mem.broker.stats("other").ready == 1
    run(mem)
    assert sent.get(timeout=5) == 3


# -- chains -----------------------------------------------------------------------------------
def test_chain_passes_each_result_on_and_returns_the_last(wf: Conveyor) -> None:
    result = chain(add.s(1, 2), mul.s(10), add.s(5)).apply_async()
    piped = (add.s(1, 1) | mul.s(3) | add.si(7, 7)).apply_async()
    assert result.status is State.PENDING  # the last step is known before anything runs
    run(wf)
    assert result.get(timeout=10) == 35
    assert piped.get(timeout=10) == 14


def test_a_failed_step_stops_the_chain_and_its_error_surfaces(wf: Conveyor) -> None:
    mark = token()
    result = chain(add.s(1, 2), boom.s(), note.s(mark)).apply_async()
    run(wf)
    with pytest.raises(ValueError, match="boom 3"):
        result.get(timeout=10)
    assert result.status is State.FAILURE
    assert LEDGER["note", mark] == 0  # the step after the failure never ran


def test_chain_apply_async_args_complete_the_first_step(mem: Conveyor) -> None:
    result = chain(add.s(1), mul.s(2)).apply_async((4,))
    run(mem)
    assert result.get(timeout=5) == 10


# -- groups -----------------------------------------------------------------------------------
def test_group_runs_members_and_reads_them_in_order(wf: Conveyor) -> None:
    publishes = count_publishes(wf)
    result = group(add.s(i, i) for i in range(100)).apply_async()
    assert isinstance(result, GroupResult) and len(result) == 100
    assert publishes() == 1  # one round trip for a hundred members
    assert not result.ready() and result.completed_count() == 0
    run(wf)
    assert result.get(timeout=10) == [2 * i for i in range(100)]
    assert result.ready() and result.successful() and not result.failed()
    assert result.completed_count() == 100 and result.status is State.SUCCESS


def test_group_failures_are_reported_and_propagated(mem: Conveyor) -> None:
    result = group(add.s(1, 1), boom.s(2), add.s(2, 2)).apply_async()
    run(mem)
    assert result.ready() and result.failed() and not result.successful()
    assert result.completed_count() == 2 and result.status is State.FAILURE
    with pytest.raises(ValueError, match="boom 2"):
        result.get(timeout=5)
    values = result.get(timeout=5, propagate=False)
    assert values[0] == 2 and isinstance(values[1], ValueError) and values[2] == 4


def test_group_result_is_saved_and_restored_by_id(wf: Conveyor) -> None:
    result = group(add.s(i, 1) for i in range(3)).apply_async().save()
    run(wf)
    restored = GroupResult.restore(result.id, app=wf)
    assert restored is not None and [r.id for r in restored] == [r.id for r in result]
    assert restored.get(timeout=10) == [1, 2, 3]
    assert GroupResult.restore("no-such-group", app=wf) is None


async def test_group_and_chain_from_async_producers(mem: Conveyor) -> None:
    result = await group(add.s(1, 1), add.s(2, 2)).aapply_async()
    chained = await (add.s(1, 1) | mul.s(5)).adelay()
    await asyncio.to_thread(run, mem)
    assert await result.aget(timeout=5) == [2, 4]
    assert await chained.aget(timeout=5) == 10


# -- chords -----------------------------------------------------------------------------------
def test_chord_runs_its_callback_once_with_every_result(wf: Conveyor) -> None:
    mark = token()
    result = chord(add.s(i, i) for i in range(20))(tsum.s(mark))
    two_step = chord(group(add.s(1, 1), add.s(2, 2)), tsum.s(mark)).apply_async()
    run(wf)
    assert result.get(timeout=10) == sum(2 * i for i in range(20))
    assert two_step.get(timeout=10) == 6
    assert LEDGER["tsum", mark] == 2
    header = GroupResult.restore(result_parent(wf, result.id), app=wf)
    assert header is not None and len(header) == 20  # the header is saved under the chord id


def test_a_failed_member_fails_the_chord_at_once_naming_it(wf: Conveyor) -> None:
    mark = token()
    result = chord([add.s(1, 1), boom.s(7), add.s(2, 2)], tsum.s(mark)).apply_async()
    run(wf)
    with pytest.raises(ChordError, match=r"member t\.boom\[.*\] raised ValueError: boom 7"):
        result.get(timeout=10)
    assert LEDGER["tsum", mark] == 0


def test_a_retried_member_counts_once(wf: Conveyor) -> None:
    mark = token()
    result = chord([flaky.s(5), add.s(1, 1)], tsum.s(mark)).apply_async()
    run(wf)
    assert result.get(timeout=10) == 7
    assert LEDGER["tsum", mark] == 1


def test_chord_with_an_empty_header_runs_the_callback_at_once(mem: Conveyor) -> None:
    result = chord([], tsum.s()).apply_async()
    run(mem)
    assert result.get(timeout=5) == 0


def test_a_redelivered_last_member_neither_loses_nor_doubles_the_callback(
        wf: Conveyor) -> None:
    """The worker 'dies' after the callback was sent and before the ack (a middleware after
    the workflows one raises once): the member is delivered again (after its lease, or on
    RabbitMQ once the worker's channel closes), counts again, and the callback still runs
    once."""
    mark = token()
    CRASH.armed, CRASH.crashed, CRASH.redelivered = True, 0, False
    try:
        result = chord([add.s(1, 1), add.s(2, 2)], tsum.s(mark)).apply_async()
        asyncio.run(work(wf, lambda: result.ready() and CRASH.crashed, lease=1.0))
        asyncio.run(work(wf, lambda: CRASH.redelivered and settled(wf), lease=1.0))
    finally:
        CRASH.armed = False
    assert CRASH.crashed == 1
    assert result.get(timeout=5) == 6
    assert LEDGER["tsum", mark] == 1
    assert CRASH.redelivered  # the member was delivered again and settled


def test_chord_members_can_be_chains_and_chords(wf: Conveyor) -> None:
    mark = token()
    inner = chord([add.s(1, 1), add.s(1, 1)], tsum.s())  # 4
    result = chord([chain(add.s(1, 2), mul.s(10)), inner, add.s(0, 1)], tsum.s(mark))()
    run(wf)
    assert result.get(timeout=10) == 30 + 4 + 1
    assert LEDGER["tsum", mark] == 1


def test_a_failing_chain_inside_a_chord_header_fails_the_chord(mem: Conveyor) -> None:
    result = chord([chain(add.s(1, 2), boom.s(), mul.s(2)), add.s(1, 1)], tsum.s())()
    run(mem)
    with pytest.raises(ChordError, match="boom 3"):
        result.get(timeout=5)


def test_workflows_with_a_result_backend_apart_from_the_broker(tmp_path: Path) -> None:
    """The broker only carries messages (as RabbitMQ would); results, chord counts and
    memberships are in another store."""
    app.broker_url = f"memory://canvas-{uuid.uuid4().hex}"
    app.backend_url = f"sqlite:///{tmp_path}/results.db"
    try:
        assert not app.shared_store
        mark = token()
        chained = chain(add.s(1, 2), mul.s(10)).apply_async()
        chorded = chord([add.s(i, i) for i in range(5)], tsum.s(mark)).apply_async()
        failing = chord([boom.s(1), add.s(1, 1)], tsum.s(mark)).apply_async()
        run(app)
        assert chained.get(timeout=10) == 30 and chorded.get(timeout=10) == 20
        with pytest.raises(ChordError):
            failing.get(timeout=10)
        assert LEDGER["tsum", mark] == 1
    finally:
        app.close()


# -- nesting ----------------------------------------------------------------------------------
def test_group_inside_a_chain_becomes_a_chord(wf: Conveyor) -> None:
    result = (add.s(1, 1) | group(mul.s(i) for i in range(4)) | tsum.s()).apply_async()
    ends_in_group = chain(add.s(1, 1), group(mul.s(1), mul.s(2))).apply_async()
    run(wf)
    assert result.get(timeout=10) == 2 * (0 + 1 + 2 + 3)
    assert isinstance(ends_in_group, GroupResult)
    assert ends_in_group.get(timeout=10) == [2, 4]


def test_chains_inside_a_group_and_a_chain_after_a_chord(wf: Conveyor) -> None:
    grouped = group(chain(add.s(i, 1), mul.s(2)) for i in range(3)).apply_async()
    after = chain(chord([add.s(1, 1), add.s(2, 2)], tsum.s()), mul.s(10), add.s(1)).apply_async()
    run(wf)
    assert grouped.get(timeout=10) == [2, 4, 6]
    assert after.get(timeout=10) == 61


def test_canvas_types_compose() -> None:
    made = add.s(1, 1) | mul.s(2)
    assert isinstance(made, Chain) and len((made | add.s(1)).tasks) == 3  # flattened
    assert isinstance(group(add.s(1, 1)), Group) and isinstance(chord([add.s(1, 1)]), Chord)
    with pytest.raises(ConfigurationError, match="has no callback"):
        chord([add.s(1, 1)]).apply_async()
    with pytest.raises(ConfigurationError, match="takes signatures"):
        chain(add.s(1, 1), 5)  # type: ignore[call-overload]


# -- callbacks --------------------------------------------------------------------------------
def test_link_and_link_error_callbacks(wf: Conveyor) -> None:
    mark = token()
    ok = add.apply_async((1, 2), link=note.s(mark))
    bad = boom.apply_async((4,), link_error=note.s(mark))
    errback = boom.s(5).on_error(note.s(mark)).apply_async()
    run(wf)
    assert ok.get(timeout=10) == 3
    assert LEDGER["note:3", mark] == 1  # the link received the result
    assert LEDGER[f"note:{bad.id}", mark] == 1  # the errback received the failed task's id
    assert LEDGER[f"note:{errback.id}", mark] == 1
    assert LEDGER["note", mark] == 3


def test_chain_on_error_runs_for_the_step_that_failed(mem: Conveyor) -> None:
    mark = token()
    result = chain(add.s(1, 1), boom.s(), add.s(1)).on_error(note.s(mark)).apply_async()
    run(mem)
    with pytest.raises(ValueError):
        result.get(timeout=5)
    assert LEDGER["note", mark] == 1


def test_chord_on_error_runs_when_the_chord_fails(mem: Conveyor) -> None:
    mark = token()
    result = chord([boom.s(1), add.s(1, 1)], tsum.s()).on_error(note.s(mark)).apply_async()
    run(mem)
    with pytest.raises(ChordError):
        result.get(timeout=5)
    assert LEDGER[f"note:{result.id}", mark] == 1


# -- parent and root ids ----------------------------------------------------------------------
def test_parent_and_root_ids_are_recorded_in_requests_and_events(mem: Conveyor) -> None:
    first = whoami.s()
    result = chain(first, whoami.s(), group(whoami.s(), whoami.s())).apply_async()
    run(mem)
    members = result.get(timeout=5)
    assert isinstance(result, GroupResult)
    second_id = members[0]["parent"]
    root = members[0]["root"]
    assert second_id is not None and root not in (None, second_id)
    assert {m["group"] for m in members} == {result.id}
    events = asyncio.run(received_events(mem))
    second = events[second_id]
    assert second["parent_id"] == root and second["root_id"] == root
    assert "parent_id" not in events[root] and "root_id" not in events[root]


# -- helpers ----------------------------------------------------------------------------------
class CrashOnce(Middleware):
    """When armed, fails the settle of the delivery that sent a chord's callback (after the
    workflows middleware ran), as a worker killed right there would, once."""

    def __init__(self) -> None:
        self.armed = False
        self.crashed = 0
        self.redelivered = False

    async def before_settle(self, job: Job, verdict: Verdict) -> Verdict:
        message = job.message
        if message is not None and self.crashed and job.delivery.deliveries > 1:
            self.redelivered = True
        if (self.armed and message is not None and "chord" in message.options
                and await fired_value(job.app, message.options["chord"]["id"]) == b"sent"):
            self.armed = False
            self.crashed += 1
            raise RuntimeError("the worker dies before the ack")
        return verdict


CRASH = CrashOnce()
app.add_middleware(CRASH)


async def fired_value(wf: Conveyor, chord_id: str) -> bytes | None:
    from conveyor.canvas.completion import fired_key
    from conveyor.canvas.launch import coordination

    return await coordination(wf).aget_value(fired_key(chord_id))


async def work(wf: Conveyor, done: Any, lease: float, timeout: float = 30.0) -> None:
    worker = Worker(wf, ["default"], concurrency=2, lease=lease)
    running = asyncio.ensure_future(worker.run())
    try:
        async with asyncio.timeout(timeout):
            while not await asyncio.to_thread(done):  # noqa: ASYNC110 - a test's wait
                await asyncio.sleep(0.05)
    finally:
        await worker.stop(fast=True)
        await running


def settled(wf: Conveyor) -> bool:
    stats = wf.broker.stats("default")
    return stats.ready + stats.in_flight + stats.delayed == 0


async def received_events(wf: Conveyor) -> dict[str, dict[str, Any]]:
    from conveyor.middleware.events import require_event_log

    found = await require_event_log(wf).read_events("0", 1000, 0.1)
    return {e.task_id: e.fields for e in found if e.kind == "task-received"}


def result_parent(wf: Conveyor, callback_id: str) -> str:
    """The chord id of a callback, from its message's record of where it came from."""
    events = asyncio.run(received_events(wf))
    return str(events[callback_id]["parent_id"])


def count_publishes(wf: Conveyor) -> Any:
    """How many publish round trips the broker made from now on (it is wrapped, not faked;
    a publish_tracked that publishes through publish counts once)."""
    broker = wf.broker
    calls, depth = [0], [0]
    for name in ("publish", "publish_tracked"):
        real = getattr(broker, name)

        def counting(*args: Any, _real: Any = real, **kwargs: Any) -> Any:
            calls[0] += depth[0] == 0
            depth[0] += 1
            try:
                return _real(*args, **kwargs)
            finally:
                depth[0] -= 1

        setattr(broker, name, counting)
    return lambda: calls[0]
