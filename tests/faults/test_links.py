"""Scenario 5: the producer's link to the broker cut or reset in the middle of a publish."""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import Iterator
from urllib.parse import urlsplit, urlunsplit

import pytest

from conveyor import Conveyor
from conveyor.errors import ConveyorError
from tests.faults import ledger
from tests.faults.harness import LONG, Figures, Fleet, Target, settled, wait_for
from tests.faults.proxy import Proxy

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800 if LONG else 150)]

WORK = "tests.faults.faultapp.work"


@pytest.fixture
def proxy(target: Target) -> Iterator[Proxy]:
    if target.kind == "sqlite":
        pytest.skip("SQLite has no network link to cut (its writer killed mid-commit: scenario 4)")
    parts = urlsplit(target.url)
    started = Proxy(parts.hostname or "127.0.0.1", parts.port or 0).start()
    yield started
    started.close()


def through(url: str, port: int) -> str:
    parts = urlsplit(url)
    netloc = parts.netloc.rsplit(":", 1)[0] + f":{port}"
    return urlunsplit(parts._replace(netloc=netloc))


def arm(proxy: Proxy, rng: random.Random) -> str:
    fault = rng.choice(["none", "cut", "cut", "lose-reply", "reset"])
    if fault == "cut":
        proxy.cut_after(rng.randint(1, 400))
    elif fault == "lose-reply":
        proxy.lose_reply()
    elif fault == "reset":
        proxy.reset()
        time.sleep(0.01)
    return fault


def test_link_cut_mid_publish(target: Target, proxy: Proxy, fleet: Fleet, app: Conveyor,
                              figures: Figures) -> None:
    """5. Each publish either returned (its task runs once) or raised a Conveyor error; the
    same id published again after an error runs at most once."""
    calls = 1500 if LONG else 150
    fleet.start(concurrency=4)
    producer = Conveyor("faults-producer", broker=through(target.url, proxy.port),
                        backend=target.backend)
    rng = random.Random(5)
    accepted, raised, retried = set(), set(), 0
    faults: dict[str, int] = {}
    try:
        for _ in range(calls):
            task_id = str(uuid.uuid4())
            for attempt in range(4):  # a failed publish is retried with the same id
                fault = arm(proxy, rng) if attempt < 3 else "none"
                faults[fault] = faults.get(fault, 0) + 1
                try:
                    producer.send_task(WORK, [0.01], task_id=task_id)
                except ConveyorError:
                    raised.add(task_id)
                    retried += 1
                    continue
                finally:
                    proxy.heal()
                accepted.add(task_id)
                break
    finally:
        producer.close()
    fleet.wait_ended(accepted, 600 if LONG else 60)
    wait_for(lambda: settled(app), 30, "queue not empty")
    time.sleep(1.0)  # a second copy of an id would have started by now
    verdict = ledger.check(fleet.ledger, accepted, maybe=raised)
    figures.add(**verdict.summary(), calls=calls, faults=faults, publishes_raised=retried,
                resets=proxy.resets)
    figures.publish()
    assert verdict.clean, verdict
    assert retried > calls // 4, "the proxy cut too few publishes to tell anything"
    # each call's last try goes through a healed proxy: a client that reconnects succeeds there
    assert len(accepted) > calls // 2, f"only {len(accepted)} of {calls} calls ever succeeded"
