"""Unique tasks: a second enqueue with the same key while the first is pending or running
returns the first one's result handle instead of queueing a second run.

``apply_async(..., unique_key="report:42", unique_for=timedelta(minutes=10))`` per call, or
``@app.task(unique_key=lambda report_id: f"report:{report_id}")`` (``True``: the task's name and
arguments) for every call. At publish the key is claimed with one atomic put-if-absent in the
store (:class:`~conveyor.brokers.Coordination`), so of any number of concurrent producers
exactly one queues the task; the others get its id. The worker frees the key when the task
ends (success, failure, revoked, expired, dead-lettered; not while it waits for a retry), and
the key frees itself after ``unique_for`` (default: the app's ``unique_for`` setting) whatever
happens, e.g. if the publish after the claim failed or the message was purged.

The claim is a blocking round trip in the producer, also in ``aapply_async``.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import TYPE_CHECKING

import orjson

from ..brokers import Coordination
from ..errors import BrokerError, ConfigurationError
from .base import DUPLICATE_OF, Action, Job, Middleware, Verdict

if TYPE_CHECKING:
    from ..app import Conveyor
    from ..message import Message

log = logging.getLogger("conveyor.unique")

#: The message option holding the claimed key, for the worker to free it.
CLAIMED = "unique_claimed"


class UniqueTasks(Middleware):
    def before_publish(self, app: Conveyor, message: Message) -> Message:
        key = unique_key(app, message)
        if key is None:
            return message
        store, claim = _coordination(app), f"unique:{app.name}:{key}"
        ttl = message.options.get("unique_for") or _task_unique_for(app, message) or float(
            app.conf.unique_for)
        for _ in range(3):  # b"": the holder expired between the two steps of a claim
            held = store.put_if_absent(claim, message.id.encode(), ttl)
            if held != b"":
                break
        if held is None or held.decode() == message.id:
            return dataclasses.replace(message, options={**message.options, CLAIMED: claim})
        first = held.decode()
        return dataclasses.replace(message, id=first,
                                   options={**message.options, DUPLICATE_OF: first})

    async def after_settle(self, job: Job, verdict: Verdict) -> None:
        claim = job.message.options.get(CLAIMED) if job.message is not None else None
        if claim is None or verdict.action is Action.RETRY:
            return  # still pending: retried, or waiting for a rate limit or a slot
        store = job.app.backend
        try:
            if isinstance(store, Coordination):
                await store.acompare_and_set(claim, job.id.encode(), None, 1.0)
        except BrokerError as exc:  # it frees itself after unique_for
            log.warning("could not free unique key %s: %s", claim, exc)


def unique_key(app: Conveyor, message: Message) -> str | None:
    """The call's key, else the one its task derives from the arguments, else None."""
    given = message.options.get("unique_key")
    if given is not None:
        return str(given)
    task = app.tasks.get(message.task)
    derive = task.options.unique_key if task is not None else None
    if derive is None or derive is False:
        return None
    if derive is True:
        import hashlib  # here: only tasks with unique_key=True hash their arguments

        raw = orjson.dumps([message.args, message.kwargs], option=orjson.OPT_SORT_KEYS,
                           default=repr)
        return f"{message.task}:{hashlib.sha256(raw).hexdigest()[:32]}"
    return f"{message.task}:{derive(*message.args, **message.kwargs)}"


def _task_unique_for(app: Conveyor, message: Message) -> float | None:
    task = app.tasks.get(message.task)
    return task.options.unique_for if task is not None else None


def _coordination(app: Conveyor) -> Coordination:
    backend = app.backend
    if not isinstance(backend, Coordination):
        raise ConfigurationError(f"unique tasks need a result backend with coordination values;"
                                 f" {backend.url} has none")
    return backend
