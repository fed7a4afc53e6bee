"""Fixtures of the fault matrix: the broker under test (each of harness.BROKERS), the fleet."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from conveyor import Conveyor
from tests.faults.harness import BROKERS, Figures, Fleet, Target, bind_app, shared_target


@pytest.fixture(params=BROKERS)
def target(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Target]:
    """The broker on its shared server, under a private prefix, db file or vhost."""
    with shared_target(request.param, tmp_path) as found:
        yield found


@pytest.fixture
def fleet(target: Target, tmp_path: Path) -> Iterator[Fleet]:
    started = Fleet(target, tmp_path)
    yield started
    started.stop_all()


@pytest.fixture
def app(target: Target) -> Iterator[Conveyor]:
    bound = bind_app(target.url)
    yield bound
    bound.close()


@pytest.fixture
def figures(request: pytest.FixtureRequest, target: Target) -> Figures:
    """The figures of this scenario on this broker; the test publishes them once it checked."""
    return Figures(request.node.originalname.removeprefix("test_"), target.kind)
