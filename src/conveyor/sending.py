"""The producer's path: a call becomes a message, the message an envelope, envelopes a publish.

Every encoding error is raised here, in the producer, as a :class:`SerializationError` naming the
task and the argument. Publishing with ``track`` also records each message as PENDING, in the
same transaction or round trip where the broker is the result backend.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from .brokers import Envelope, StoredResult
from .brokers.base import UNTRACKED_START
from .errors import ConfigurationError, PayloadTooLarge, SerializationError
from .message import Message, new_id
from .middleware.base import is_duplicate
from .options import TaskOptions, seconds
from .states import State

if TYPE_CHECKING:
    from .app import Conveyor

_PENDING_DATA = b""  # a PENDING record carries no payload; the state column says it all


def build_message(
    app: Conveyor, name: str, options: TaskOptions | None, args: tuple[Any, ...],
    kwargs: dict[str, Any], *, countdown: float | None = None,
    eta: datetime | float | None = None, expires: datetime | float | None = None,
    priority: int | None = None, queue: str | None = None, task_id: str | None = None,
    time_limit: float | timedelta | None = None,
    soft_time_limit: float | timedelta | None = None, unique_key: str | None = None,
    unique_for: float | timedelta | None = None,
    message_options: dict[str, Any] | None = None,
) -> Message:
    """A message for task ``name`` with per-call options over the task's defaults;
    ``message_options`` travel in the message (workflow links, see :mod:`conveyor.canvas`)."""
    now = app.clock.time()
    opts = options or TaskOptions(queue=app.conf.default_queue)
    when = now + countdown if countdown is not None else epoch(eta)
    expires = expires if expires is not None else opts.expires
    deadline = now + expires if isinstance(expires, int | float) else epoch(expires)
    prio = opts.priority if priority is None else priority
    if isinstance(prio, bool) or not isinstance(prio, int) or not 0 <= prio <= 9:
        raise ConfigurationError(f"priority must be an int from 0 to 9, got {prio!r}")
    extra = call_options(time_limit=time_limit, soft_time_limit=soft_time_limit,
                         unique_key=unique_key, unique_for=unique_for)
    message = Message(id=task_id or new_id(), task=name, args=args, kwargs=kwargs,
                      queue=queue or route(app, name) or opts.queue, priority=prio, eta=when,
                      expires=deadline, created=now, options={**extra, **(message_options or {})})
    return app.middleware.before_publish(app, message)


def route(app: Conveyor, name: str) -> str | None:
    """The queue the app's ``routes`` give task ``name``: the first glob pattern that matches
    (``{"shop.emails.*": "emails", "shop.cache.*": "fanout/cache"}``), in the order given."""
    for pattern, where in app.conf.routes.items():
        if fnmatch.fnmatchcase(name, pattern):
            queue = where.get("queue") if isinstance(where, dict) else where
            if not isinstance(queue, str) or not queue:
                raise ConfigurationError(f"routes[{pattern!r}] must name a queue, got"
                                         f" {where!r}")
            return queue
    return None


def call_options(*, time_limit: float | timedelta | None,
                 soft_time_limit: float | timedelta | None, unique_key: str | None,
                 unique_for: float | timedelta | None) -> dict[str, Any]:
    """The per-call control options a message carries (only those given), durations in
    seconds; read on the worker by the time limits and at publish by unique tasks."""
    found: dict[str, Any] = {}
    for name, value in (("time_limit", time_limit), ("soft_time_limit", soft_time_limit),
                        ("unique_for", unique_for)):
        if value is not None:
            found[name] = seconds(value, name)
    if unique_key is not None:
        if not isinstance(unique_key, str) or not unique_key:
            raise ConfigurationError(f"unique_key must be a non-empty string, got {unique_key!r}")
        found["unique_key"] = unique_key
    return found


def envelope(app: Conveyor, message: Message) -> Envelope:
    """Serialize a message; SerializationError names the task and the argument at fault."""
    try:
        body = app.codec.dumps(message.to_dict())
    except SerializationError as exc:
        raise argument_error(message, exc) from None
    limit = app.conf.max_message_size
    if len(body) > limit:
        raise PayloadTooLarge(f"cannot send {message.task}: its message takes {len(body):,}"
                              f" bytes, more than max_message_size ({limit:,}); pass a"
                              " reference (a path, a URL, a row id) instead of the data")
    signer = app.signer
    if signer is not None:
        body = signer.sign(body, app.clock.time())
    return Envelope(message.id, message.queue, body, app.codec.content_type, message.priority,
                    message.eta)


def publish(app: Conveyor, messages: Sequence[Message], track: bool = True) -> None:
    """Send messages in one round trip; with ``track`` record them as PENDING. A message a
    ``before_publish`` hook marked as a duplicate of a queued one is not sent."""
    messages = [m for m in messages if not is_duplicate(m)]
    if not messages:
        return
    envelopes = [envelope(app, m) for m in messages]
    if not track:
        app.broker.publish(envelopes)
    elif app.shared_store:  # one transaction or round trip where the store can
        app.broker.publish_tracked(envelopes, pending(app, messages), pending_ttl(app, messages))
    else:
        app.broker.publish(envelopes)
        app.backend.store_many(pending(app, messages), pending_ttl(app, messages))
    app.middleware.after_publish(app, messages)


async def apublish(app: Conveyor, messages: Sequence[Message], track: bool = True) -> None:
    """Async form of :func:`publish`."""
    messages = [m for m in messages if not is_duplicate(m)]
    if not messages:
        return
    envelopes = [envelope(app, m) for m in messages]
    if not track:
        await app.broker.apublish(envelopes)
    elif app.shared_store:
        await app.broker.apublish_tracked(envelopes, pending(app, messages),
                                          pending_ttl(app, messages))
    else:
        await app.broker.apublish(envelopes)
        await app.backend.astore_many(pending(app, messages), pending_ttl(app, messages))
    app.middleware.after_publish(app, messages)


def pending(app: Conveyor, messages: Sequence[Message]) -> list[tuple[str, StoredResult]]:
    """PENDING records; a task that keeps no STARTED state is marked so, for brokers that
    record starts themselves."""
    return [(m.id, StoredResult(_PENDING_DATA if _tracks_start(app, m) else UNTRACKED_START,
                                State.PENDING, 0, False)) for m in messages]


def _tracks_start(app: Conveyor, message: Message) -> bool:
    task = app.tasks.get(message.task)
    own = task.options.track_started if task is not None else None
    return bool(app.conf.track_started if own is None else own)


def pending_ttl(app: Conveyor, messages: Sequence[Message]) -> float:
    """A PENDING record outlives the latest ETA by the result TTL."""
    latest = max((m.eta or 0.0 for m in messages), default=0.0)
    return app.conf.result_ttl + max(0.0, latest - app.clock.time())


def argument_error(message: Message, exc: SerializationError) -> SerializationError:
    """``cannot send shop.add: argument args[0]: integer ... out of range``."""
    field, *inside = exc.path or ("message",)
    name = f"{field}{''.join(f'[{step!r}]' for step in inside)}"
    kind = {"args": "argument", "kwargs": "keyword argument"}.get(str(field), "field")
    return SerializationError(f"cannot send {message.task}: {kind} {name}: {exc.why}",
                              exc.path, exc.why)


def epoch(when: datetime | float | None) -> float | None:
    """Epoch seconds of an aware datetime (or a number, passed through)."""
    if when is None or isinstance(when, int | float):
        return when
    if when.tzinfo is None:
        raise ConfigurationError("naive datetime given: use an aware datetime (with tzinfo)")
    return when.timestamp()
