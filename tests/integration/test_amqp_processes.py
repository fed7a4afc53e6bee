"""RabbitMQ with real worker processes: results in Redis, messages on a private vhost."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from conveyor import Conveyor, State
from conveyor.brokers import Envelope
from conveyor.errors import PublishRefused
from tests.integration.amqp_env import amqp_env, bound_app
from tests.integration.conftest import ROOT, trace_lines, wait_for
from tests.integration.conftest import Workers as BaseWorkers

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]


@pytest.fixture
def env(tmp_path: Path) -> Iterator[dict[str, str]]:
    with amqp_env(tmp_path) as found:
        yield found


@pytest.fixture
def app(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Iterator[Conveyor]:
    with bound_app(env, monkeypatch) as bound:
        yield bound


class Workers(BaseWorkers):
    """Workers of the RabbitMQ test app, on threads, each with a tag its tasks report."""

    def start(self, *args: str, tag: str = "w") -> subprocess.Popen[bytes]:  # type: ignore[override]
        return self.spawn(["-A", "tests.integration.amqp_app", "--pool", "thread", *args],
                          {**self.env, "WORKER_TAG": tag})


@pytest.fixture
def workers(env: dict[str, str]) -> Iterator[Workers]:
    started = Workers(env)
    yield started
    started.stop_all()


def consumers_on(app: Conveyor, queue: str, count: int) -> None:
    """Wait until ``count`` workers consume ``queue`` (a passive declare counts them)."""
    from conveyor.brokers.amqp import AmqpBroker

    broker = app.broker
    assert isinstance(broker, AmqpBroker)
    wait_for(lambda: broker.consumers(queue) >= count, timeout=30)


def test_end_to_end_results_in_redis(app: Conveyor, workers: Workers) -> None:
    from tests.integration import amqp_app

    workers.start("-c", "4")
    results = [amqp_app.record.delay(f"t{i}") for i in range(50)]
    assert [r.get(timeout=30) for r in results] == [f"t{i}" for i in range(50)]
    assert results[0].status is State.SUCCESS
    wait_for(lambda: app.broker.stats("default").ready == 0)


def test_sigkill_mid_task_loses_nothing(app: Conveyor, workers: Workers,
                                        env: dict[str, str]) -> None:
    from tests.integration import amqp_app

    victim = workers.start("-c", "2", "--lease", "2")  # the killed one's id claims run out
    sent = [amqp_app.record.delay(f"k{i}", 0.3) for i in range(20)]
    wait_for(lambda: len(trace_lines(env, "started")) >= 3, timeout=30)
    os.kill(victim.pid, signal.SIGKILL)
    victim.wait()
    workers.start("-c", "2", "--lease", "2")
    assert sorted(r.get(timeout=60) for r in sent) == sorted(f"k{i}" for i in range(20))
    done = {line.split()[0] for line in trace_lines(env, "done")}
    assert done == {f"k{i}" for i in range(20)}  # every task ran to the end at least once


def test_fanout_reaches_each_of_two_workers(app: Conveyor, workers: Workers,
                                            env: dict[str, str]) -> None:
    from tests.integration import amqp_app

    workers.start("-Q", "fanout/cache", "-c", "1", tag="one")
    workers.start("-Q", "fanout/cache", "-c", "1", tag="two")

    def both_listening() -> bool:  # probe until each worker's own queue is bound
        try:
            amqp_app.invalidate.delay("probe")
        except PublishRefused:  # no queue bound to the exchange yet
            return False
        return {ln.split()[1] for ln in trace_lines(env, "invalidated")} == {"one", "two"}

    wait_for(both_listening, timeout=30, every=0.5)
    before = len(trace_lines(env, "invalidated"))
    amqp_app.invalidate.delay("users:42")
    wait_for(lambda: sorted(ln.split()[1] for ln in trace_lines(env, "invalidated")
                            if ln.startswith("users:42")) == ["one", "two"], timeout=30)
    assert len(trace_lines(env, "invalidated")) >= before + 2


def test_topic_patterns_route_as_documented(app: Conveyor, workers: Workers,
                                            env: dict[str, str]) -> None:
    from tests.integration import amqp_app

    workers.start("-Q", "topic/media/image.*", "-c", "1", tag="star")
    workers.start("-Q", "topic/media/#", "-c", "1", tag="hash")
    consumers_on(app, "topic/media/image.*", 1)
    consumers_on(app, "topic/media/#", 1)
    amqp_app.image_resize.delay("a.png")  # routed by the app's routes: key image.png
    amqp_app.image_resize.apply_async(("b.jpg",), queue="topic/media/image.jpg.thumb")
    amqp_app.image_resize.apply_async(("c.gif",), routing_key="image.gif")  # over the route's
    amqp_app.image_resize.s("d.mp4").set(queue="topic/media", routing_key="video.mp4").delay()
    wait_for(lambda: len(trace_lines(env, "images")) == 6, timeout=30)
    got = sorted(trace_lines(env, "images"))
    assert got == ["a.png hash", "a.png star", "b.jpg hash", "c.gif hash", "c.gif star",
                   "d.mp4 hash"]  # image.* is one word only
    with pytest.raises(PublishRefused):
        amqp_app.image_resize.apply_async(("c",), queue="topic/unbound-exchange/x")


def test_priorities_order_a_backlog(app: Conveyor, workers: Workers,
                                    env: dict[str, str]) -> None:
    from tests.integration import amqp_app

    sent = [(p, i) for i in range(3) for p in (0, 9, 5)]
    for p, i in sent:
        amqp_app.record.apply_async((f"{p}-{i}",), priority=p)
    workers.start("-c", "1", "--prefetch", "1")
    wait_for(lambda: len(trace_lines(env, "done")) == len(sent), timeout=30)
    order = [line.split()[0] for line in trace_lines(env, "done")]
    assert [tag.split("-")[0] for tag in order] == ["9"] * 3 + ["5"] * 3 + ["0"] * 3


def test_delay_and_backoff_survive_a_worker_restart_once_not_early(
    app: Conveyor, workers: Workers, env: dict[str, str]
) -> None:
    from tests.integration import amqp_app

    worker = workers.start("-c", "2")
    sent_at = time.time()
    delayed = amqp_app.record.apply_async(("later",), countdown=3.0)
    flaky = amqp_app.flaky.delay("f")
    wait_for(lambda: trace_lines(env, "flaky"), timeout=30)  # first run failed: backoff 1 s
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(30) == 0
    assert app.broker.stats("default").delayed >= 1  # waiting in RabbitMQ, not in a worker
    time.sleep(1.0)
    workers.start("-c", "2")
    assert delayed.get(timeout=30) == "later"
    assert flaky.get(timeout=30) == 1
    runs = [line for line in trace_lines(env, "done") if line.startswith("later")]
    assert len(runs) == 1 and float(runs[0].split()[2]) >= sent_at + 3.0
    tries = trace_lines(env, "flaky")
    assert len(tries) == 2 and float(tries[1].split()[2]) - float(tries[0].split()[2]) >= 1.0


def test_poison_message_reaches_the_dead_letter_queue_with_its_reason(
    app: Conveyor, workers: Workers
) -> None:
    from conveyor.brokers import dead_letter_admin

    workers.start("-c", "1")
    poison = Envelope(str(uuid.uuid4()), "default", b"\xff not json")
    app.broker.publish([poison])
    admin = dead_letter_admin(app.broker)
    dead = wait_for(lambda: admin.dead_letters("default"), timeout=30)
    assert dead[0].envelope.id == poison.id and dead[0].envelope.body == poison.body
    assert "Malformed" in dead[0].reason or "decode" in dead[0].reason.lower()
    out = subprocess.run([sys.executable, "-m", "conveyor", "dlq", "list", "-A",
                          "tests.integration.amqp_app", "-Q", "default"],
                         env=os.environ, cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert poison.id in out.stdout, out.stderr
    assert admin.purge_dead("default") == 1
