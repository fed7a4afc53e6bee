"""The contract suite runs every case against every store in ``tests.stores.STORES``.

To add a store: teach ``tests.stores.store_url`` its URL and add its name to ``STORES``.
The suite uses the public contract only. A case that needs an optional capability calls
:func:`needs` first, so a store without it skips that case by name, never silently.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from conveyor.brokers import open_store
from tests.stores import STORES, store_url


@pytest.fixture(params=STORES)
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Any]:
    with store_url(request.param, tmp_path) as url:
        opened = open_store(url)
        try:
            yield opened
        finally:
            await opened.aclose()


def needs(store: Any, capability: type, what: str) -> None:
    """Skip this case for a store that does not offer ``capability`` (documented, visible)."""
    if not isinstance(store, capability):
        pytest.skip(f"{type(store).__name__} does not offer {what} ({capability.__name__})")
