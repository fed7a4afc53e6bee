"""Store URLs for tests: every store the contract suite runs against, each private to one test.

A store that cannot be had here is skipped locally and fails under CI (env ``CI`` set).
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

REDIS_HOST, REDIS_PORT = "127.0.0.1", 6379
STORES = ["memory", "sqlite", "redis", "redis-cluster"]


def unavailable(what: str) -> None:
    """Skip locally, fail in CI: a missing service must never pass silently there."""
    if os.environ.get("CI"):
        pytest.fail(f"{what} is not available in CI")
    pytest.skip(f"{what} is not available")


def redis_up() -> bool:
    try:
        with socket.create_connection((REDIS_HOST, REDIS_PORT), timeout=0.5):
            return True
    except OSError:
        return False


def drop_redis_prefix(prefix: str) -> None:
    """Delete every key of a test prefix on the shared server (never FLUSHALL it)."""
    import redis

    client = redis.Redis(host=REDIS_HOST, port=REDIS_PORT)
    try:
        keys = list(client.scan_iter(match=f"*{prefix}*", count=1000))
        for start in range(0, len(keys), 500):
            client.delete(*keys[start:start + 500])
    finally:
        client.close()


@contextmanager
def store_url(kind: str, tmp_path: Path) -> Iterator[str]:
    """A URL for a fresh, private store of ``kind``; its data is removed afterwards."""
    if kind == "memory":
        yield f"memory://test-{uuid.uuid4().hex}"
    elif kind == "sqlite":
        pytest.importorskip("conveyor.brokers.sqlite")
        yield f"sqlite:///{tmp_path}/conveyor.db"
    elif kind == "redis":
        pytest.importorskip("conveyor.brokers.redis")
        if not redis_up():
            unavailable(f"Redis at {REDIS_HOST}:{REDIS_PORT}")
        prefix = f"ctest-{uuid.uuid4().hex[:12]}"
        try:
            yield f"redis://{REDIS_HOST}:{REDIS_PORT}/0?prefix={prefix}"
        finally:
            drop_redis_prefix(prefix)
    elif kind == "redis-cluster":
        pytest.importorskip("conveyor.brokers.redis")
        from tests.redis_servers import drop_cluster_prefix, session_cluster

        found = session_cluster()
        prefix = f"ctest-{uuid.uuid4().hex[:12]}"
        try:
            yield f"{found.url}?prefix={prefix}"
        finally:
            drop_cluster_prefix(found, prefix)
    else:
        raise ValueError(kind)
