"""Browser tests: headless Debian Chromium driven by Playwright against a real dashboard
process, real worker processes and a real store. Screenshots go to test-output/screenshots/.

Chromium is installed by ``scripts/services.sh`` (``make test``); Playwright's own browser
download is never used. Missing Chromium or Playwright skips locally and fails in CI.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from conveyor import Conveyor
from tests.integration.conftest import Workers
from tests.monitoring import ROOT, Server, monitoring_env
from tests.stores import PAIRS, store_urls, unavailable

CHROMIUM = "/usr/bin/chromium"
SHOTS = ROOT / "test-output" / "screenshots"


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Chromium for one module. Not for the session: Playwright's sync API runs an event loop
    in the main thread while it is open, and later tests need to start their own."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        unavailable("Playwright for Python")
    if not shutil.which(CHROMIUM):
        unavailable(f"Chromium at {CHROMIUM} (scripts/services.sh installs it)")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True,
            args=["--no-sandbox", "--disable-background-networking", "--disable-gpu"])
        yield launched
        launched.close()


@dataclass
class Stack:
    """One store (or a broker and its result backend) with a dashboard and a worker on it,
    and a producer app."""

    kind: str
    url: str
    env: dict[str, str]
    workers: Workers
    dashboard: Server
    producer: Conveyor

    def shot(self, page: Any, name: str) -> Path:
        SHOTS.mkdir(parents=True, exist_ok=True)
        path = SHOTS / f"{self.kind}-{name}.png"
        page.screenshot(path=str(path), full_page=True)
        return path


@pytest.fixture(scope="module", params=["sqlite", "redis", *PAIRS])
def stack(request: pytest.FixtureRequest,
          tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    tmp = tmp_path_factory.mktemp(request.param)
    (tmp / "trace").mkdir()
    with store_urls(request.param, tmp) as (url, backend):
        env = monitoring_env({**os.environ, "CONVEYOR_BROKER_URL": url,
                              "CONVEYOR_RESULT_BACKEND": backend,
                              "CONVEYOR_TEST_DIR": str(tmp / "trace"),
                              "PYTHONPATH": str(ROOT)})
        workers = Workers(env)
        workers.start("-c", "2", "-n", "w-main")
        dashboard = Server(env, "--db", str(tmp / "index.db"))
        producer = Conveyor("itest", broker=url, backend=backend, send_sent_events=True)
        try:
            yield Stack(request.param, url, env, workers, dashboard, producer)
        finally:
            producer.close()
            dashboard.stop()
            workers.stop_all()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    opened = context.new_page()
    opened.set_default_timeout(15_000)
    yield opened
    context.close()
