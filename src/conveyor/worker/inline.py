"""Short sync tasks on the event loop's own thread, in a one-slot worker.

A sync task normally runs in a thread of the runner's pool. Handing it there and its result
back costs two thread switches, which on a busy machine is about a quarter of what a short
task costs end to end. A one-slot worker (each process-pool child) has no other task to run
meanwhile, so there a sync task whose runs have been short (on average under
:data:`INLINE_UNDER`, and seen at least once in the pool first) is called on the loop's thread.

While such a call runs the loop waits, so nothing is left to it that cannot wait:

- a :class:`Keeper` thread renews the consumer's leases by the store's blocking path once the
  call has lasted a sixth of the lease, so a call that turns out long is never handed to
  another worker meanwhile (the store must offer that path, see ``Consumer.keeper``);
- a long call raises the task's average, so its next runs go to the pool again;
- what else waits on the loop (heartbeats, remote control, a stop signal) is served as soon as
  the call returns: a short time by the rule above, except for a call that turns out long.

Runs that need the loop while they run (a time limit, a concurrency key or an id claim renewed
as it runs: their middleware set ``Job.loop_bound``) and ``async def`` tasks never run here.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Callable, Iterator
from typing import TypeVar

from ..clock import Clock

log = logging.getLogger("conveyor.worker")
T = TypeVar("T")

#: A task runs on the loop's thread while its runs take less than this on average.
INLINE_UNDER = 0.002
#: The weight of the latest run in a task's moving average.
WEIGHT = 0.2


class Keeper:
    """A daemon thread that calls ``renew`` every ``every`` seconds while a call on the loop's
    thread has lasted at least that long (started on first use)."""

    def __init__(self, renew: Callable[[], None], every: float, clock: Clock) -> None:
        self._renew, self.every, self._clock = renew, every, clock
        self.since: float | None = None  # when the call now running began (monotonic)
        self._closed = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._watch, name="lease-keeper", daemon=True)
            self._thread.start()

    def _watch(self) -> None:
        while not self._closed.wait(self.every):
            since = self.since
            if since is not None and self._clock.monotonic() - since >= self.every:
                self._renew_now()

    def _renew_now(self) -> None:
        try:
            self._renew()
        except Exception as exc:  # the store is down: the next tick tries again
            log.warning("could not renew leases while a task ran: %s", exc)

    def close(self) -> None:
        self._closed.set()


class Inline:
    """Which sync tasks run on the loop's thread (see the module docstring), and running them
    there under a :class:`Keeper` of the consumer's leases."""

    def __init__(self, renew: Callable[[], None], lease: float, clock: Clock) -> None:
        self.clock = clock
        self.keeper = Keeper(renew, lease / 6, clock)
        self._typical: dict[str, float] = {}

    def admits(self, name: str) -> bool:
        """True if task ``name``'s runs so far have been short."""
        typical = self._typical.get(name)
        return typical is not None and typical < INLINE_UNDER

    def call(self, name: str, fn: Callable[[], T]) -> T:
        """``fn()`` on this thread, its leases kept alive meanwhile. The task sees no running
        loop, as in a thread: it may run one of its own (``asyncio.run``)."""
        self.keeper.start()
        loop = asyncio.events._get_running_loop()
        asyncio.events._set_running_loop(None)
        started = self.keeper.since = self.clock.monotonic()
        try:
            return fn()
        finally:
            self.keeper.since = None
            asyncio.events._set_running_loop(loop)
            self._record(name, self.clock.monotonic() - started)

    @contextlib.contextmanager
    def timing(self, name: str) -> Iterator[None]:
        """Count the time the body takes as a run of task ``name``."""
        started = self.clock.monotonic()
        try:
            yield
        finally:
            self._record(name, self.clock.monotonic() - started)

    def _record(self, name: str, took: float) -> None:
        typical = self._typical.get(name)
        self._typical[name] = took if typical is None else (1 - WEIGHT) * typical + WEIGHT * took

    def close(self) -> None:
        self.keeper.close()

