"""Worker: one process consuming queues and running up to ``concurrency`` tasks at once.

Shutdown: the first ``stop()`` (SIGTERM/SIGINT) stops taking work, gives back what was fetched
but not started, and lets running tasks finish within ``grace`` seconds; what is still running
then, or at a second ``stop()``, is cancelled and its message given back at once.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from collections.abc import Sequence
from typing import TYPE_CHECKING

from ..brokers import Consumer, Delivery
from ..brokers.base import PullConsumer
from ..errors import BrokerError, LeaseLost
from ..middleware.base import Job
from ..middleware.events import EventBuffer, event_log, retention
from ..states import State
from .execution import execute
from .groups import QueueGroup, group_prefetch
from .inline import Inline
from .pools import default_name
from .runner import Runner

if TYPE_CHECKING:
    from ..app import Conveyor

log = logging.getLogger("conveyor.worker")


#: Tasks shorter than this on average are fetched in batches of ``BATCH`` per slot.
SHORT_TASK, BATCH = 0.01, 16


class _Lane:
    """One slot group: its consumer and the slots its deliveries wait for."""

    def __init__(self, group: QueueGroup, prefetch: int) -> None:
        self.group = group
        self.prefetch = prefetch
        self.slots = asyncio.Semaphore(group.slots)
        self.busy = 0
        self.consumer: Consumer | None = None

    def free(self) -> None:
        """A run of this lane is over: its slot goes to the next delivery."""
        self.busy -= 1
        self.slots.release()


class Worker:
    """Consumes ``queues`` of ``app`` and runs up to ``concurrency`` tasks at once, holding at
    most ``prefetch`` messages (default: ``concurrency``). ``await run()`` until stopped.

    ``groups`` (see :mod:`conveyor.worker.groups`) splits the slots between queues: each group
    has its own consumer, slots and prefetch bound, so a busy queue never takes another's slots.

    ``running`` maps delivery ids to the jobs in progress; ``processed`` and ``failed`` count
    finished deliveries (not those put back to wait for a rate limit or a concurrency slot).
    Heartbeats and ``inspect`` report these. ``exit_code`` is what the worker's process should
    exit with (set by a remote shutdown). ``inline``: a one-slot worker may run short sync
    tasks on its event loop's thread (:mod:`conveyor.worker.inline`); a process-pool child does.
    """

    def __init__(self, app: Conveyor, queues: Sequence[str] = ("default",), *,
                 concurrency: int = 1, prefetch: int | None = None, grace: float = 30.0,
                 lease: float | None = None, exit_on_runaway: bool = False,
                 name: str | None = None, pool: str = "async",
                 groups: Sequence[QueueGroup] | None = None, inline: bool = False) -> None:
        self.app = app
        self.queues = list(queues)
        self.concurrency = concurrency
        # Fetch only what can start now by default, so a long task never sits on messages
        # another worker could run; a larger prefetch trades that fairness for fewer round trips.
        self.prefetch = max(prefetch or concurrency, concurrency)
        self._tuned = prefetch is None
        self._typical: float | None = None  # moving average of run times
        self.grace = grace
        self.lease = app.lease if lease is None else lease
        self.exit_on_runaway = exit_on_runaway
        self.name = name or default_name()
        self.pool = pool
        self.runner = Runner(concurrency)
        self._inline = inline and concurrency == 1
        self.running: dict[str, Job] = {}
        self.processed = self.failed = 0
        self.started_at = 0.0
        self.events: EventBuffer | None = None
        self.exit_code = 0
        self.groups = list(groups or [QueueGroup(tuple(self.queues), concurrency)])
        self._lanes = self._plan_lanes(groups, prefetch)
        self._tasks: set[asyncio.Task[None]] = set()
        self._stopping = asyncio.Event()
        self._stops = 0

    def _plan_lanes(self, groups: Sequence[QueueGroup] | None,
                    prefetch: int | None) -> list[_Lane]:
        if not groups:
            return [_Lane(self.groups[0], self.prefetch)]
        self.queues = [q for g in groups for q in g.queues]
        lanes = [_Lane(g, group_prefetch(g, prefetch, self.concurrency)) for g in groups]
        self.prefetch = sum(lane.prefetch for lane in lanes)
        return lanes

    def tune(self, job: Job, lane: _Lane) -> None:
        """Adapt prefetch to how long tasks take: short ones (under ``SHORT_TASK`` on average)
        are fetched ``BATCH`` at a time per slot, so claims and settles go in batches; once
        tasks run long, back to what the slots can run now, so no long task sits on messages
        another worker could take. A ``prefetch`` given by the user stays as it is."""
        if not self._tuned or not job.started or lane.consumer is None:
            return
        took = self.app.clock.monotonic() - job.started
        typical = took if self._typical is None else 0.8 * self._typical + 0.2 * took
        self._typical = typical
        wanted = lane.group.slots * (BATCH if typical < SHORT_TASK else 1)
        if wanted != lane.prefetch:
            self.prefetch += wanted - lane.prefetch
            lane.prefetch = wanted
            lane.consumer.resize(wanted)

    @property
    def stopping(self) -> asyncio.Event:
        """Set once the worker was asked to stop."""
        return self._stopping

    def runtime(self, job: Job) -> float:
        """Seconds ``job`` has been running (0 before it started)."""
        return self.app.clock.monotonic() - job.started if job.started else 0.0

    async def run(self) -> None:
        """Consume until stopped, then drain in-flight tasks (see the module docstring)."""
        store = event_log(self.app)
        self.events = EventBuffer(store, retention(self.app)) if store is not None else None
        self.started_at = self.app.clock.time()
        for lane in self._lanes:
            lane.consumer = self._open_consumer(lane)
        self._run_inline()
        await self.app.middleware.worker_start(self)
        log.debug("process %d consuming %s (concurrency %d)", os.getpid(),
                  " ".join(g.describe() for g in self.groups), self.concurrency)
        try:
            await asyncio.gather(*(self._consume(lane) for lane in self._lanes))
        finally:
            await self._drain()
            await self.app.middleware.worker_stop(self)
            if self.events is not None:
                await self.events.close()
            self.runner.close()

    def _open_consumer(self, lane: _Lane) -> Consumer:
        consumer = self.app.broker.consume(
            list(lane.group.queues), prefetch=lane.prefetch, lease=self.lease,
            # where the broker keeps the results too, it records STARTED while handing out
            record_started=self.app.shared_store)
        if isinstance(consumer, PullConsumer):
            consumer.defer_settles = True  # this loop never waits for a settle (see _handle)
        return consumer

    def _run_inline(self) -> None:
        """Short sync tasks run on the loop's thread if asked, where the consumer can keep its
        leases from another thread (see :mod:`conveyor.worker.inline`)."""
        consumer = self._lanes[0].consumer
        renew = consumer.keeper() if self._inline and consumer is not None else None
        if renew is not None:
            self.runner.inline = Inline(renew, self.lease, self.app.clock)

    def lanes(self) -> list[dict[str, object]]:
        """Each slot group's queues, slots and busy slots (heartbeats report them)."""
        return [{"queues": list(lane.group.queues), "slots": lane.group.slots,
                 "busy": lane.busy} for lane in self._lanes]

    async def _consume(self, lane: _Lane) -> None:
        consumer = lane.consumer
        assert consumer is not None
        backoff = 0.1
        while not self._stopping.is_set():
            try:
                delivery = await anext(consumer)
            except StopAsyncIteration:
                return
            except BrokerError as exc:
                log.warning("broker error, retrying in %.1fs: %s", backoff, exc)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
                continue
            backoff = 0.1
            await lane.slots.acquire()  # a prefetched message waits here for a free slot
            if self._stopping.is_set() or self._leaving():
                lane.slots.release()
                await self._give_back(delivery)
                if not self._stopping.is_set():
                    await self.stop()
                return
            lane.busy += 1
            task = asyncio.create_task(self._handle(delivery, lane))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
            if self.runner.runaway and self.exit_on_runaway:
                await self.stop()

    def _leaving(self) -> bool:
        """A process-pool child whose task thread was abandoned starts nothing more: that
        thread may hold the runner's only thread, and the child exits once its run is settled
        (its slot is free before then, see ``Job.on_ran``)."""
        return self.runner.runaway and self.exit_on_runaway

    async def _handle(self, delivery: Delivery, lane: _Lane) -> None:
        job = Job(self.app, delivery, self.runner, self, on_ran=lane.free)
        try:
            await self._execute(job, lane)
        finally:
            job.ran()  # frees the slot if the path ended before it got there

    async def _execute(self, job: Job, lane: _Lane) -> None:
        delivery = job.delivery
        self.running[job.id] = job
        try:
            verdict = await execute(job)
        except LeaseLost:
            log.warning("lease of %s was lost; another worker owns it", job.id)
        except asyncio.CancelledError:
            await asyncio.shield(self._give_back(delivery))
            raise
        except Exception:
            # Not given back at once (that would loop on a message that breaks settling): the
            # lease returns it, and the delivery limit ends a message that always fails so.
            log.exception("could not settle %s; it returns after its lease", job.id)
            delivery.abandon()
        else:
            if not verdict.deferred:
                self.processed += 1
                self.failed += verdict.state is State.FAILURE
        finally:
            self.running.pop(job.id, None)
            self.tune(job, lane)
        if self.runner.runaway and self.exit_on_runaway:
            await self.stop()

    async def _give_back(self, delivery: Delivery) -> None:
        try:
            await asyncio.wait_for(delivery.release(), 5.0)
        except Exception as exc:  # the lease expiry will return it instead
            log.warning("could not give back %s: %s", delivery.envelope.id, exc)
            delivery.abandon()

    async def stop(self, fast: bool = False) -> None:
        """Stop taking work; with ``fast`` (or when called twice) cancel running tasks too."""
        self._stops += 1
        if self._stops == 1:
            log.info("worker %s (process %d) stopping: %d task(s) running", self.name,
                     os.getpid(), len(self.running))
        self._stopping.set()
        for lane in self._lanes:
            if lane.consumer is not None:
                await lane.consumer.close()
        if fast or self._stops > 1:
            for task in list(self._tasks):
                task.cancel()

    async def _drain(self) -> None:
        for lane in self._lanes:
            if lane.consumer is not None:
                await lane.consumer.close()
        if self._tasks:
            log.info("waiting up to %.0fs for %d running task(s)", self.grace, len(self._tasks))
            _, late = await asyncio.wait(set(self._tasks), timeout=self.grace)
            for task in late:
                task.cancel()
            if late:
                await asyncio.wait(late)
        log.info("worker %s (process %d) stopped: %d processed, %d failed", self.name,
                 os.getpid(), self.processed, self.failed)

    def install_signal_handlers(self) -> None:
        """SIGTERM and SIGINT stop gracefully; a second one stops fast."""
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, lambda: asyncio.ensure_future(self.stop()))
