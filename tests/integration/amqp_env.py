"""What the RabbitMQ process tests share: a private vhost with results in a private Redis
prefix, and the RabbitMQ test app (tests/integration/amqp_app.py) bound to them."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from conveyor import Conveyor
from tests.integration.conftest import ROOT
from tests.stores import amqp_vhost, store_url

KEYS = ("CONVEYOR_BROKER_URL", "CONVEYOR_RESULT_BACKEND", "CONVEYOR_TEST_DIR")


@contextmanager
def amqp_env(tmp_path: Path, **query: str) -> Iterator[dict[str, str]]:
    """The environment of worker processes on a private vhost (``query``: URL options)."""
    trace = tmp_path / "trace"
    trace.mkdir()
    with amqp_vhost(**query) as broker, store_url("redis", tmp_path) as backend:
        yield {**os.environ, "CONVEYOR_BROKER_URL": broker, "CONVEYOR_RESULT_BACKEND": backend,
               "CONVEYOR_TEST_DIR": str(trace), "PYTHONPATH": str(ROOT)}


@contextmanager
def bound_app(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Iterator[Conveyor]:
    """The RabbitMQ test app in this process, on ``env``'s stores; closed afterwards."""
    for key in KEYS:
        monkeypatch.setenv(key, env[key])
    from tests.integration import amqp_app

    amqp_app.app.broker_url = env["CONVEYOR_BROKER_URL"]
    amqp_app.app.backend_url = env["CONVEYOR_RESULT_BACKEND"]
    try:
        yield amqp_app.app
    finally:
        amqp_app.app.close()
