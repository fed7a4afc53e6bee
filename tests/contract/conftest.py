"""The contract suite runs every case against every store in ``tests.stores.STORES``.

To add a store: teach ``tests.stores.store_url`` its URL and add its name to ``STORES``.
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
