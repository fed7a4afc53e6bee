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
STORES = ["memory", "sqlite", "redis", "redis-cluster", "amqp"]
#: Pairings of a broker-only store with a result backend, named ``BROKER+BACKEND``.
PAIRS = ["amqp+redis"]


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
    elif kind == "amqp":
        with amqp_vhost() as url:
            yield url
    else:
        raise ValueError(kind)


@contextmanager
def store_urls(kind: str, tmp_path: Path) -> Iterator[tuple[str, str]]:
    """``(broker_url, backend_url)`` of fresh private stores: a store of :data:`STORES` holds
    both (one URL twice), a pairing of :data:`PAIRS` (``amqp+redis``) has one store each."""
    broker_kind, _, backend_kind = kind.partition("+")
    if not backend_kind:
        with store_url(kind, tmp_path) as url:
            yield url, url
        return
    with store_url(broker_kind, tmp_path) as broker, store_url(backend_kind, tmp_path) as backend:
        yield broker, backend


AMQP_HOST, AMQP_PORT = "127.0.0.1", 5672


def amqp_up() -> bool:
    try:
        with socket.create_connection((AMQP_HOST, AMQP_PORT), timeout=0.5):
            return True
    except OSError:
        return False


def _rabbitmqctl(*args: str) -> None:
    import subprocess

    subprocess.run(["rabbitmqctl", "-q", *args], check=True, capture_output=True, timeout=60)


_RUN_VHOST: list[str] = []


def _run_vhost() -> str | None:
    """This test run's private vhost on the shared RabbitMQ, made on first use with
    ``rabbitmqctl`` (a local node, run as root or the rabbitmq user) and deleted at exit; None
    where it cannot be made (then a private name prefix on the default vhost stands in)."""
    import atexit
    import shutil

    if _RUN_VHOST:
        return _RUN_VHOST[0] or None
    name = f"ctest-{uuid.uuid4().hex[:12]}"
    try:
        if not shutil.which("rabbitmqctl"):
            raise OSError("no rabbitmqctl")
        _rabbitmqctl("add_vhost", name)
        atexit.register(_rabbitmqctl, "delete_vhost", name)
        _rabbitmqctl("set_permissions", "-p", name, "guest", ".*", ".*", ".*")
    except Exception:
        name = ""
    _RUN_VHOST.append(name)
    return name or None


@contextmanager
def amqp_vhost(**query: str) -> Iterator[str]:
    """An ``amqp://`` URL private to one test: this run's vhost and a name prefix of its own
    (every queue and exchange it declares carries it)."""
    from urllib.parse import urlencode

    pytest.importorskip("aio_pika")
    if not amqp_up():
        unavailable(f"RabbitMQ at {AMQP_HOST}:{AMQP_PORT}")
    vhost = _run_vhost() or ""
    params = urlencode({**query, "prefix": f"t{uuid.uuid4().hex[:10]}."})
    yield f"amqp://guest:guest@{AMQP_HOST}:{AMQP_PORT}/{vhost}?{params}"
