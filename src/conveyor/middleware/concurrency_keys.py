"""Concurrency keys: ``@app.task(concurrency_key=lambda customer_id, **_: customer_id,
concurrency_limit=2)`` lets at most two runs per customer be active at once, across every
worker, on leased slots in the store (:class:`~conveyor.brokers.ConcurrencySlots`; a key is
scoped to its task).

A run whose key is busy is not run: its message is put back (:meth:`Verdict.defer`) and takes a
place in the key's line. When a run of that key ends, the first in line is woken: its message
becomes due at once (:class:`~conveyor.brokers.DelayedWake`), at the place in the queue its
deferral gave it. Meanwhile the queue keeps flowing with other keys' tasks, so one tenant's burst
waits in its own line and cannot starve the others. A waiter sleeps at most
``concurrency_recheck`` seconds (a holder that died frees its slot after its lease, with nobody
to wake the line); on a broker that cannot wake messages early (RabbitMQ) waiters look again
every :data:`NO_WAKE_RECHECK` seconds instead. Slots are renewed while their run lasts.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterator
from typing import Any

from ..brokers import ConcurrencySlots, DelayedWake, Waiter
from ..errors import BrokerError, ConfigurationError
from ..outcome import ErrorInfo
from .base import Call, Job, Middleware, Verdict

log = logging.getLogger("conveyor.worker")

_HOLDS, _WAITS = "concurrency.holds", "concurrency.waits"
#: A waiter's longest sleep on a broker without early wake-ups (they then look again).
NO_WAKE_RECHECK = 2.0


class ConcurrencyKeys(Middleware):
    async def before_run(self, job: Job) -> Verdict | None:
        try:
            spec = key_of(job)
        except Exception as exc:  # the task's own key function failed: the task cannot run
            return Verdict.dead(f"concurrency_key failed: {type(exc).__name__}: {exc}",
                                ErrorInfo.from_exception(exc))
        if spec is None:
            return None
        key, limit = spec
        slots, (queue, lease) = _slots(job), _where(job)
        patience = recheck(job) + lease
        granted, woken = await slots.acquire_slot(key, limit, job.id, lease,
                                                  Waiter(queue, job.id), patience)
        await _wake(job, woken)
        if granted:
            job.scratch[_HOLDS] = key
            return None
        job.scratch[_WAITS] = key
        return Verdict.defer(recheck(job), f"concurrency key {key!r} has {limit} running")

    async def around_run(self, job: Job, call: Call) -> Any:
        key = job.scratch.get(_HOLDS)
        if key is None:
            return await call()
        job.loop_bound = True
        with _renewing(job, key):
            return await call()

    async def after_settle(self, job: Job, verdict: Verdict) -> None:
        try:
            spec = key_of(job)
        except Exception:  # reported by before_run
            return
        if spec is None:
            return
        key, limit = spec
        try:
            if key == job.scratch.get(_WAITS):  # woken while being put back? wake itself
                if await _slots(job).slot_woken(key, job.id):
                    await _wake(job, [Waiter(_where(job)[0], job.id)])
            else:  # it ran, or ended without running (revoked, expired): free its place
                await _wake(job, await _slots(job).release_slot(key, limit, job.id))
        except BrokerError as exc:  # the slot's lease frees it; waiters recheck
            log.warning("could not free concurrency slot %r of %s: %s", key, job.id, exc)


def key_of(job: Job) -> tuple[str, int] | None:
    """This run's key (scoped to its task) and limit, or None when the task has none."""
    task, message = job.task, job.message
    if task is None or message is None or task.options.concurrency_key is None:
        return None
    limit = task.options.concurrency_limit or 1
    value = task.options.concurrency_key(*message.args, **message.kwargs)
    return f"{job.app.name}:{task.name}:{value}", limit


def recheck(job: Job) -> float:
    """How long a waiter sleeps at most: ``concurrency_recheck``, or at most
    :data:`NO_WAKE_RECHECK` seconds on a broker that cannot wake it early."""
    seconds = float(job.app.conf.concurrency_recheck)
    return seconds if isinstance(job.app.broker, DelayedWake) else min(seconds, NO_WAKE_RECHECK)


def _slots(job: Job) -> ConcurrencySlots:
    backend = job.app.backend
    if not isinstance(backend, ConcurrencySlots):
        raise ConfigurationError(f"concurrency keys need a result backend that keeps slots;"
                                 f" {backend.url} does not")
    return backend


def _where(job: Job) -> tuple[str, float]:
    queue = job.message.queue if job.message is not None else job.delivery.envelope.queue
    lease = job.worker.lease if job.worker is not None else job.app.lease
    return queue, lease


async def _wake(job: Job, waiters: list[Waiter]) -> None:
    broker = job.app.broker
    if not waiters or not isinstance(broker, DelayedWake):
        return
    by_queue: dict[str, list[str]] = {}
    for waiter in waiters:
        by_queue.setdefault(waiter.queue, []).append(waiter.id)
    for queue, ids in by_queue.items():
        await broker.wake_delayed(queue, ids)


@contextlib.contextmanager
def _renewing(job: Job, key: str) -> Iterator[None]:
    """Renew the slot every third of its lease while the run lasts."""
    lease = _where(job)[1]

    async def renew() -> None:
        while True:
            await asyncio.sleep(lease / 3)
            try:
                if await _slots(job).renew_slots([(key, job.id)], lease):
                    log.warning("%s lost its concurrency slot %r", job.id, key)
            except BrokerError as exc:
                log.warning("could not renew concurrency slot %r: %s", key, exc)

    renewer = asyncio.ensure_future(renew())
    try:
        yield
    finally:
        renewer.cancel()
