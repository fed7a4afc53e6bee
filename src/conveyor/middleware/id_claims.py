"""Id claims: one run per task id on a broker that keeps no index of ids (RabbitMQ).

Such a broker stores the same id published twice (by several producers, or a producer that
retried a publish) as two messages, and two workers could run them at once. Before a delivery
of such a broker runs, its worker takes a claim on the id in the result backend: one atomic
put-if-absent (:class:`~conveyor.brokers.Coordination`) under ``idclaim:APP:ID``, holding a
token of this delivery for the worker's lease and renewed every third of it while the task
runs. Then:

- the claim is taken: the delivery goes on. A copy whose record is already final (the id ran)
  is acknowledged without running by :class:`~conveyor.middleware.Results`, as on every broker;
- another delivery holds it and the record is final: a duplicate, acknowledged unrun;
- another delivery holds it, record not final: put back (:meth:`Verdict.defer`), never
  dropped, until the claim's remaining TTL (read from the store) runs out, or a quarter of the
  lease if that is sooner. The holder may be running it, or be a worker that was killed, whose
  message RabbitMQ hands out again: its claim runs out at most a lease after its last renewal
  and a copy looks again then and runs the task (at-least-once holds).

The claim is freed once the delivery is settled (its outcome stored first), retries included,
so the retry's copy (and a ``conveyor dlq replay``, which clears the old outcome) runs.
Brokers with an index of ids (SQLite, Redis: ``Broker.claims_ids`` False) need none of this
and pay nothing, nor do RabbitMQ's fanout queues (each worker runs its copy on purpose). Tasks
with ``ignore_result`` keep no record: a copy that arrives after the first run was settled runs
again. A claim a worker could not free (its settle failed, it was killed) runs out after the
lease; a copy that finds the record final meanwhile is acknowledged without running.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import Iterator
from typing import Any

from ..brokers import Coordination
from ..errors import BrokerError
from .base import Call, Job, Middleware, Verdict

log = logging.getLogger("conveyor.worker")

_HELD = "id_claims.held"  # scratch: (key, token) of the claim this delivery holds


class IdClaims(Middleware):
    async def before_run(self, job: Job) -> Verdict | None:
        store = _store(job)
        if store is None:
            return None
        key, token, lease = f"idclaim:{job.app.name}:{job.id}", secrets.token_hex(8), _lease(job)
        held = await store.aput_if_absent(key, token.encode(), lease)
        if held is None:
            job.scratch[_HELD] = (key, token)
            return None
        record = await job.app.backend.aget(job.id)
        if record is not None and record.final:
            log.info("%s: a duplicate of a finished task, acknowledged without running", job.id)
            return Verdict.skip(None)
        left = await store.avalue_ttl(key)
        return Verdict.defer(recheck_after(left, lease),
                             "another delivery of this id holds its claim")

    async def around_run(self, job: Job, call: Call) -> Any:
        held = job.scratch.get(_HELD)
        if held is None:
            return await call()
        job.loop_bound = True
        with _renewing(job, *held):
            return await call()

    async def after_settle(self, job: Job, verdict: Verdict) -> None:
        held, store = job.scratch.pop(_HELD, None), _store(job)
        if held is None or store is None:
            return
        key, token = held
        try:
            await store.acompare_and_set(key, token.encode(), None, 1.0)
        except BrokerError as exc:  # it runs out after the lease
            log.warning("could not free the id claim of %s: %s", job.id, exc)


RECHECK_FLOOR = 0.05  # seconds: the soonest a waiting copy looks again


def recheck_after(left: float | None, lease: float) -> float:
    """When a copy waiting for a claim with ``left`` seconds to run (None: just freed) looks
    again: when it would run out, but at least every quarter of the lease (the holder renews
    it while alive, so most looks find it renewed) and no sooner than :data:`RECHECK_FLOOR`."""
    if left is None:
        return min(RECHECK_FLOOR, lease / 4)
    return min(lease / 4, max(RECHECK_FLOOR, left))


def _store(job: Job) -> Coordination | None:
    """The result backend when this delivery's broker needs id claims and it can hold them."""
    if not job.app.broker.claims_ids(job.delivery.envelope.queue):
        return None
    backend = job.app.backend
    return backend if isinstance(backend, Coordination) else None


def _lease(job: Job) -> float:
    return job.worker.lease if job.worker is not None else job.app.lease


@contextlib.contextmanager
def _renewing(job: Job, key: str, token: str) -> Iterator[None]:
    """Renew the claim every third of the lease while the run lasts."""
    store, lease = _store(job), _lease(job)
    assert store is not None

    async def renew() -> None:
        while True:
            await asyncio.sleep(lease / 3)
            try:
                if not await store.acompare_and_set(key, token.encode(), token.encode(), lease):
                    log.warning("%s lost its id claim: another copy may run", job.id)
                    return
            except BrokerError as exc:
                log.warning("could not renew the id claim of %s: %s", job.id, exc)

    renewer = asyncio.ensure_future(renew())
    try:
        yield
    finally:
        renewer.cancel()
