"""Live updates over Server-Sent Events (``GET /live``).

One ticker makes one update a second, only while someone listens and only when something
changed: the overview figures, the workers and, for pages that list tasks (``/live?rows=1``),
the rows of the tasks changed since the last update (the newest ``MAX_ROWS``; a page that fell
further behind than the follower remembers is told to re-read its list). Each form is encoded
once and queued to every listener wanting it; a listener too slow to keep up is dropped (its
browser reconnects and starts afresh), so one stuck tab never grows the dashboard's memory.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

import orjson

if TYPE_CHECKING:
    from .state import Dashboard

TICK = 1.0
KEEPALIVE = 15.0
MAX_ROWS = 200
_QUEUE = 32


class Live:
    """The ticker and its listeners."""

    def __init__(self, dash: Dashboard) -> None:
        self.dash = dash
        self._listeners: dict[asyncio.Queue[bytes | None], bool] = {}  # -> wants rows
        self._ticker: asyncio.Task[None] | None = None
        self._version = 0
        self._beats: tuple[tuple[str, float], ...] = ()
        self.last: bytes = b""

    async def listen(self, rows: bool = False) -> AsyncIterator[bytes]:
        """SSE frames for one listener, starting with the current state; with ``rows`` the
        updates carry changed task rows."""
        queue: asyncio.Queue[bytes | None] = asyncio.Queue(_QUEUE)
        self._listeners[queue] = rows
        if self._ticker is None or self._ticker.done():
            self._ticker = asyncio.ensure_future(self._run())
        try:
            yield b"retry: 2000\n\n"
            yield _frame(await self.update(initial=True))
            while True:
                try:
                    frame = await asyncio.wait_for(queue.get(), KEEPALIVE)
                except TimeoutError:
                    yield b": keepalive\n\n"
                    continue
                if frame is None:
                    return
                yield frame
        finally:
            self._listeners.pop(queue, None)

    async def _run(self) -> None:
        while self._listeners:
            await asyncio.sleep(TICK)
            if not self._changed():
                continue
            update = await self.update(any(self._listeners.values()))
            with_rows = _frame(update)
            without = _frame({**update, "tasks": []}) if update["tasks"] else with_rows
            for queue, rows in list(self._listeners.items()):
                try:
                    queue.put_nowait(with_rows if rows else without)
                except asyncio.QueueFull:  # too slow: drop it, its browser reconnects
                    self._listeners.pop(queue, None)
                    with contextlib.suppress(asyncio.QueueFull):
                        queue.get_nowait()
                        queue.put_nowait(None)

    def _changed(self) -> bool:
        follower = self.dash.follower
        beats = tuple((k, e.at) for k, e in follower.processes.items())
        changed = follower.version != self._version or beats != self._beats
        self._beats = beats
        return changed

    async def update(self, rows: bool = False, initial: bool = False) -> dict[str, Any]:
        """The payload of one update (``initial``: the figures only, as a page starts)."""
        follower = self.dash.follower
        version = follower.version
        changed = [] if initial else follower.changed_since(self._version)
        if not initial:
            self._version = version
        reset = changed is None
        ids = (changed or [])[-MAX_ROWS:] if rows else []
        found = await asyncio.to_thread(self.dash.index.rows, ids) if ids else []
        return {"v": version, "reset": reset, "tasks": found,
                "overview": await self.dash.overview(),
                "workers": [w.to_dict() for w in self.dash.workers()]}


def _frame(payload: dict[str, Any]) -> bytes:
    return b"event: update\ndata: " + orjson.dumps(payload) + b"\n\n"
