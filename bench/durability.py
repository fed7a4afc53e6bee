"""What each Redis durability choice costs a producer: single enqueues per second (one message
per call, as ``task.delay()`` sends them) on private servers started from the installed
``redis-server``, one configuration after another.

    python -m bench.durability [--messages 3000]

Configurations: no persistence; AOF with ``appendfsync everysec`` and ``always``; a primary
with a replica and ``wait_replicas=1``; a three-master cluster, without and with WAIT. Every
server runs on loopback on this machine, so the figures show relative costs, not network ones.
"""

from __future__ import annotations

import argparse
import contextlib
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from tempfile import TemporaryDirectory

from tests.redis_servers import Cluster, Node, free_port

from conveyor.brokers import Envelope, open_store


def rate(url: str, messages: int) -> float:
    """Single publishes per second against ``url`` (after a short warm-up)."""
    store = open_store(url)
    try:
        for i in range(50):
            store.publish([Envelope(id=f"warm{i}", queue="bench", body=b"x" * 200)])
        started = time.perf_counter()
        for _ in range(messages):
            store.publish([Envelope(id=uuid.uuid4().hex, queue="bench", body=b"x" * 200)])
        return messages / (time.perf_counter() - started)
    finally:
        store.close()


@contextlib.contextmanager
def single(*args: str) -> Iterator[str]:
    with TemporaryDirectory() as tmp:
        node = Node(Path(tmp), free_port(), *args).start()
        try:
            yield f"redis://127.0.0.1:{node.port}/0"
        finally:
            node.kill()


@contextlib.contextmanager
def replicated() -> Iterator[str]:
    with TemporaryDirectory() as tmp:
        primary = Node(Path(tmp) / "p", free_port()).start()
        replica = Node(Path(tmp) / "r", free_port(), "--replicaof", "127.0.0.1",
                       str(primary.port)).start()
        try:
            with replica.client() as client:
                deadline = time.monotonic() + 30
                while client.info("replication").get("master_link_status") != "up":
                    if time.monotonic() > deadline:
                        raise TimeoutError("the replica did not connect")
                    time.sleep(0.05)
            yield f"redis://127.0.0.1:{primary.port}/0?wait_replicas=1&wait_timeout_ms=1000"
        finally:
            replica.kill()
            primary.kill()


@contextlib.contextmanager
def cluster(query: str = "") -> Iterator[str]:
    with Cluster() as found:
        yield found.url + query


CONFIGS: list[tuple[str, Callable[[], contextlib.AbstractContextManager[str]]]] = [
    ("single server, no persistence", lambda: single("--appendonly", "no")),
    ("AOF, appendfsync everysec", lambda: single("--appendonly", "yes",
                                                  "--appendfsync", "everysec")),
    ("AOF, appendfsync always", lambda: single("--appendonly", "yes",
                                                "--appendfsync", "always")),
    ("primary + replica, wait_replicas=1", replicated),
    ("cluster, 3 masters", cluster),
    ("cluster, 3 masters, wait_replicas=1",
     lambda: cluster("?wait_replicas=1&wait_timeout_ms=1000")),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=3000)
    args = parser.parse_args()
    print("| configuration | single enqueues/s |\n|---|---|")
    for name, make in CONFIGS:
        with make() as url:
            print(f"| {name} | {rate(url, args.messages):,.0f} |", flush=True)


if __name__ == "__main__":
    main()
