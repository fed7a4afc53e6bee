"""The Redis store behind Sentinel: a primary, a replica and three sentinels on loopback; the
primary is killed with SIGKILL while worker processes consume and the test keeps producing.
Workers and producers follow the promotion by themselves: tasks sent after it run, no worker
exits, and the time to recover is measured.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from conveyor import Conveyor
from tests.integration.conftest import wait_for
from tests.redis_servers import Sentinels, first_success

pytestmark = [pytest.mark.redis, pytest.mark.slow, pytest.mark.timeout(180)]


@pytest.fixture
def sentinels() -> Iterator[Sentinels]:
    with Sentinels() as deployment:
        yield deployment


@pytest.fixture
def stores(sentinels: Sentinels) -> tuple[str, str]:
    """The worker fixtures of this package on the Sentinel deployment (broker and results)."""
    url = f"{sentinels.url}?prefix=stest-{uuid.uuid4().hex[:8]}"
    return url, url


def test_workers_and_producers_follow_a_sentinel_failover(
        sentinels: Sentinels, app: Conveyor, workers: Any) -> None:
    from tests.integration import taskapp

    procs = [workers.start("-c", "2", "--pool", "thread", lease=5) for _ in range(2)]
    # Both consuming (a worker that cannot reach its store at start waits for it).
    wait_for(lambda: len(asyncio.run(app.backend.heartbeats())) >= 2,  # type: ignore[attr-defined]
             timeout=60, every=0.2)
    assert [taskapp.add.delay(i, 1).get(timeout=60) for i in range(5)] == [1, 2, 3, 4, 5]
    old = sentinels.primary.port
    killed = time.monotonic()
    sentinels.primary.kill()
    # The producer keeps trying from the moment of the kill; the sentinels promote meanwhile.
    sent, failures = first_success(lambda: taskapp.add.delay(100, 1), killed + 60)
    produced = time.monotonic() - killed
    assert sent.get(timeout=60) == 101
    ran = time.monotonic() - killed
    assert sentinels.current_primary() == sentinels.replica.port != old
    after = [taskapp.add.delay(i, 1000) for i in range(20)]
    assert [r.get(timeout=60) for r in after] == [i + 1000 for i in range(20)]
    assert all(p.poll() is None for p in procs), "a worker exited during the failover"
    print(f"\nsentinel failover: first enqueue accepted {produced:.1f} s after the kill"
          f" ({failures} refused before), its task done by a worker {ran:.1f} s after it")
