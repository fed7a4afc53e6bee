"""Redis time per message of claiming and acking, by how many messages each consumer holds and
how Redis encodes a queue's small in-flight keys, on a private server started from the
installed ``redis-server``.

    python -m bench.inflight [--batches 16,64] [--consumers 2] [--rounds 40] [--runs 5]

A queue's in-flight messages live in the hashes ``tok``, ``att`` and ``dlv`` and the sorted set
``leased``. Redis keeps a small hash or sorted set as a listpack (a flat array, searched from
one end) up to ``hash-max-listpack-entries`` / ``zset-max-listpack-entries`` entries, so each
lookup in them grows with the number in flight. Each configuration runs ``--consumers``
consumers that in turn ack their last batch (with SUCCESS records) and claim the next (with
STARTED records) in one call, as a worker does, ``--rounds`` times; the figure is the
server's time in those scripts (``INFO commandstats``) per message, best and median of
``--runs``. ``limit 16`` sets both listpack limits to 16 so the in-flight keys are hash tables
(or skip lists) from 17 entries on.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import uuid
from pathlib import Path
from tempfile import TemporaryDirectory

import redis
from tests.redis_servers import Node, free_port

from conveyor.brokers import Envelope, ResultWrite, StoredResult, open_store
from conveyor.brokers.base import Claim, Settle

LIMITS = ("hash-max-listpack-entries", "zset-max-listpack-entries")


def _acks(claims: list[Claim]) -> list[Settle]:
    return [Settle("ack", c, result=ResultWrite(
        c.envelope.id, StoredResult(b"null", "SUCCESS", c.attempt, True), 600)) for c in claims]


async def one_run(port: int, batch: int, consumers: int, rounds: int) -> float:
    """Redis microseconds per message over ``rounds`` claim-and-ack calls of each consumer."""
    store = open_store(f"redis://127.0.0.1:{port}/0?prefix=inflight-{uuid.uuid4().hex[:8]}")
    total = batch * consumers * rounds
    sent = [Envelope(uuid.uuid4().hex, "q", b"x" * 200) for _ in range(total)]
    for i in range(0, total, 5000):
        chunk = sent[i:i + 5000]
        store.publish_tracked(
            chunk, [(e.id, StoredResult(b"", "PENDING", 0, False)) for e in chunk], 600)
    with redis.Redis(port=port) as client:
        client.config_resetstat()
        held: list[list[Claim]] = [[] for _ in range(consumers)]
        for step in range(rounds + 1):  # the last round only acks
            for c in range(consumers):
                got = await store._claim_batch(["q"], batch if step < rounds else 0, 30,
                                               settles=_acks(held[c]), record_started=True)
                held[c] = got.claims
        spent = float(client.info("commandstats")["cmdstat_evalsha"]["usec"])
        client.flushdb()  # the private server's own db
    await store.aclose()
    return spent / total


def measure(port: int, batch: int, args: argparse.Namespace) -> tuple[float, float]:
    runs = [asyncio.run(one_run(port, batch, args.consumers, args.rounds))
            for _ in range(args.runs)]
    return min(runs), statistics.median(runs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", default="16,64")
    parser.add_argument("--consumers", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=40)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    print("| listpack limits | messages held per consumer | Redis µs per message, best |"
          " median |\n|---|---|---|---|")
    with TemporaryDirectory() as tmp:
        node = Node(Path(tmp), free_port(), "--appendonly", "no").start()
        try:
            with node.client() as client:
                default = client.config_get(LIMITS[0])[LIMITS[0]]
            for label, limit in ((f"default ({default})", None), ("16", "16")):
                if limit is not None:
                    with node.client() as client:
                        for name in LIMITS:
                            client.config_set(name, limit)
                for batch in map(int, args.batches.split(",")):
                    best, median = measure(node.port, batch, args)
                    print(f"| {label} | {batch} | {best:.1f} | {median:.1f} |", flush=True)
        finally:
            node.kill()


if __name__ == "__main__":
    main()
