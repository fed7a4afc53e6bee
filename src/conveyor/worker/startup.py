"""Start-up: a worker whose broker or result backend cannot be reached yet waits for it.

Stores are often started alongside the workers (a compose file, a reboot), so a worker that
finds its store down logs one line per attempt and tries again, backing off up to
``WAIT_CAP`` seconds, until the store answers or a signal stops it. Only an unreachable store
is waited for: a wrong setting still ends the worker with its error at once.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from ..errors import BrokerUnavailable

if TYPE_CHECKING:
    from ..app import Conveyor

log = logging.getLogger("conveyor.worker")

#: First and longest wait between attempts to reach a store at start-up, in seconds.
WAIT_FIRST, WAIT_CAP = 0.5, 30.0


async def reach_stores(app: Conveyor, stopping: asyncio.Event) -> bool:
    """Open the app's broker and result backend, waiting while either is unreachable; False
    if ``stopping`` was set first."""
    wait = WAIT_FIRST
    while not stopping.is_set():
        try:
            app.broker  # noqa: B018 - opening is the point: each store connects on first use
            app.backend  # noqa: B018
            return True
        except BrokerUnavailable as exc:  # the message names the store, password masked
            log.warning("%s (trying again in %.1fs)", exc, wait)
        try:
            await asyncio.wait_for(stopping.wait(), wait)
        except TimeoutError:
            wait = min(wait * 2, WAIT_CAP)
    return False
