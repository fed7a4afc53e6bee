"""Fixtures of the fault matrix: the broker under test (each of harness.BROKERS), the fleet."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from conveyor import Conveyor
from tests.faults.harness import (
    BROKERS,
    Figures,
    Fleet,
    Target,
    bind_app,
    own_target,
    shared_target,
)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "own_server: the scenario kills or fills its broker's"
                            " server, so it gets one of its own (small=True: SQLite on a small"
                            " filesystem)")
    config.addinivalue_line("markers", "brokers(*kinds): the scenario applies to these brokers"
                            " only (the others are skipped before their server is set up)")


@pytest.fixture(params=BROKERS)
def target(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Target]:
    """The broker on its shared server, under a private prefix, db file or vhost; a server of
    its own for a scenario marked ``own_server``."""
    only = request.node.get_closest_marker("brokers")
    if only is not None and request.param not in only.args:
        pytest.skip(f"applies to {', '.join(only.args)} only")
    own = request.node.get_closest_marker("own_server")
    if own is None:
        with shared_target(request.param, tmp_path) as found:
            yield found
    else:
        with own_target(request.param, tmp_path, small=own.kwargs.get("small", False)) as found:
            yield found


@pytest.fixture
def fleet(target: Target, tmp_path: Path) -> Iterator[Fleet]:
    started = Fleet(target, tmp_path)
    yield started
    started.stop_all()


@pytest.fixture
def app(target: Target) -> Iterator[Conveyor]:
    bound = bind_app(target)
    yield bound
    bound.close()


@pytest.fixture
def figures(request: pytest.FixtureRequest, target: Target) -> Figures:
    """The figures of this scenario on this broker; the test publishes them once it checked."""
    return Figures(request.node.originalname.removeprefix("test_"), target.kind)
