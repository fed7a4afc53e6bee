"""Running a beat as a process (``conveyor beat``) or beside a worker (``worker --beat``)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from typing import TYPE_CHECKING

from .beat import Beat

log = logging.getLogger("conveyor.beat")

if TYPE_CHECKING:
    from ..app import Conveyor


def run_beat_process(app: Conveyor) -> None:
    """Run a beat until SIGTERM or SIGINT; it hands the lead on as it stops."""

    async def main() -> None:
        beat = Beat(app)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, beat.stop)
        try:
            await beat.run()
        finally:
            await app.aclose()

    asyncio.run(main())


class Beside:
    """``worker --beat``: a beat on the worker's event loop, started at once. A beat that
    cannot run (a bad entry, a result backend without coordination values) logs why and
    stops, and the worker goes on."""

    def __init__(self, app: Conveyor) -> None:
        self.app = app
        self.beat: Beat | None = None
        self.task = asyncio.ensure_future(self._run())

    async def _run(self) -> None:
        try:
            self.beat = Beat(self.app)
            await self.beat.run()
        except Exception:
            log.exception("the beat in this worker stopped")

    async def stop(self) -> None:
        """Stop the beat (it hands the lead on) and wait for it."""
        if self.beat is not None:
            self.beat.stop()
        else:
            self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task
