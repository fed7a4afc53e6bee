"""Revocation: a revoked task never starts, and ``terminate`` stops it where it runs.

``app.control.revoke(ids)`` (and ``AsyncResult.revoke()``, the same operation) records REVOKED
results, adds the ids to the store's revocation set and broadcasts them. Each worker process
keeps the set in memory, loaded when it starts and fed by the control stream, so checking a task
costs no round trip; the REVOKED record backs it up (a STARTED write over it is refused), should
a message arrive between the revoke and its broadcast.

With ``terminate``, the process running the task stops it within a second or two and its state
is REVOKED: an async task is cancelled; a sync task in a process-pool child is settled REVOKED
and the child exits (the supervisor replaces it); in a thread pool TaskTerminated is raised in
its thread, which ends at its next Python instruction (a thread blocked in C code keeps running
until that call returns; the task is settled REVOKED at once all the same).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from ..brokers import Revocations
from ..control import commands as cmd
from ..errors import TaskTerminated
from ..states import State
from .base import Call, Job, Middleware, Verdict
from .remote_control import Commanded

if TYPE_CHECKING:
    from ..app import Conveyor
    from ..events import Event
    from ..worker.worker import Worker

log = logging.getLogger("conveyor.worker")

_TERMINATED = "revocation.terminated"


class Revocation(Middleware, Commanded):
    commands = (cmd.REVOKE,)

    def __init__(self) -> None:
        #: Revoked ids and until when this process remembers them (the store's TTL at most).
        self.revoked: dict[str, float] = {}
        self._pruned_at = 0

    def remember(self, app: Conveyor, ids: list[str]) -> None:
        until = app.clock.time() + float(app.conf.revoke_ttl)
        self.revoked.update(dict.fromkeys(ids, until))
        if len(self.revoked) > self._pruned_at + 10_000:  # now and then, drop expired ones
            now = app.clock.time()
            self.revoked = {i: t for i, t in self.revoked.items() if t > now}
            self._pruned_at = len(self.revoked)

    async def control_start(self, worker: Worker) -> None:
        backend = worker.app.backend
        if isinstance(backend, Revocations):
            self.remember(worker.app, await backend.arevoked_ids())

    async def on_command(self, worker: Worker, entry: Event) -> dict[str, Any] | None:
        ids = [str(i) for i in entry.fields.get("ids", [])]
        self.remember(worker.app, ids)
        stopped = [job.id for job in (worker.running.get(i) for i in ids)
                   if job is not None and entry.fields.get("terminate") and terminate(job)]
        return {"revoked": len(ids), "terminated": stopped}

    async def before_run(self, job: Job) -> Verdict | None:
        if job.id in self.revoked:
            return Verdict.skip(State.REVOKED)
        return None

    async def around_run(self, job: Job, call: Call) -> Any:
        if job.id in self.revoked:  # revoked while its start was being recorded
            job.scratch[_TERMINATED] = True
            return None
        return await call()

    async def after_run(self, job: Job, verdict: Verdict) -> Verdict:
        if job.scratch.get(_TERMINATED):
            return Verdict.skip(State.REVOKED)
        return verdict


def terminate(job: Job) -> bool:
    """Stop ``job``'s run now (see the module docstring); False if it is not running yet (the
    revocation set then keeps it from starting)."""
    running = job.runner.running.get(job.id)
    if running is None:
        return False
    log.warning("%s[%s] terminated by a revoke", job.name, job.id)
    job.scratch[_TERMINATED] = True
    running.stop(TaskTerminated(f"{job.name}[{job.id}] was terminated by revoke"))
    if running.in_thread:
        job.runner.runaway = True  # a process-pool child exits once this is settled
    return True
