"""Django's database connections around each task, as Django expects between requests.

Before and after every run, in the thread (or asyncio task) the task runs in, stale and broken
connections are closed (``django.db.close_old_connections``: those past ``CONN_MAX_AGE`` or
left unusable by an error), so a worker that lives for days never keeps using a connection the
database closed, and a failed transaction does not leak into the next task. When a worker
process starts, connections inherited from a parent are dropped without being closed.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from ..worker.runner import in_call
from .base import Call, Job, Middleware

if TYPE_CHECKING:
    from ..worker.worker import Worker


@contextlib.contextmanager
def _fresh_connections() -> Iterator[None]:
    from django.db import close_old_connections

    close_old_connections()
    try:
        yield
    finally:
        close_old_connections()


class DjangoConnections(Middleware):
    """Closes old database connections before and after each task (see the module doc)."""

    async def worker_start(self, worker: Worker) -> None:
        from django.db import connections

        for connection in connections.all(initialized_only=True):
            connection.close_if_unusable_or_obsolete()

    async def around_run(self, job: Job, call: Call) -> Any:
        with in_call(_fresh_connections):
            return await call()
