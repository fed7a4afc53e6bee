"""The producer's path: a call becomes a message, the message an envelope, envelopes a publish.

Every encoding error is raised here, in the producer, as a :class:`SerializationError` naming the
task and the argument. Publishing with ``track`` also records each message as PENDING, in the
same transaction or round trip where the broker is the result backend.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from .brokers import Envelope, StoredResult
from .brokers.base import UNTRACKED_START
from .errors import ConfigurationError, PayloadTooLarge, SerializationError
from .message import Message, new_id
from .middleware.base import is_duplicate
from .options import TaskOptions, seconds
from .routingkeys import keyed
from .states import State

if TYPE_CHECKING:
    from .app import Conveyor

_PENDING_DATA = b""  # a PENDING record carries no payload; the state column says it all


def build_message(
    app: Conveyor, name: str, options: TaskOptions | None, args: tuple[Any, ...],
    kwargs: dict[str, Any], *, countdown: float | None = None,
    eta: datetime | float | None = None, expires: datetime | float | None = None,
    priority: int | None = None, queue: str | None = None, routing_key: str | None = None,
    task_id: str | None = None, time_limit: float | timedelta | None = None,
    soft_time_limit: float | timedelta | None = None, unique_key: str | None = None,
    unique_for: float | timedelta | None = None,
    message_options: dict[str, Any] | None = None,
) -> Message:
    """A message for task ``name`` with per-call options over the task's defaults;
    ``message_options`` travel in the message (workflow links, see :mod:`conveyor.canvas`)."""
    now = app.clock.time()
    opts = options or TaskOptions(queue=app.conf.default_queue)
    when = now + countdown if countdown is not None else epoch(eta)
    deadline = _deadline(now, expires if expires is not None else opts.expires)
    prio = _priority(opts.priority if priority is None else priority)
    extra = call_options(time_limit=time_limit, soft_time_limit=soft_time_limit,
                         unique_key=unique_key, unique_for=unique_for)
    message = Message(id=task_id or new_id(), task=name, args=args, kwargs=kwargs,
                      queue=keyed(app.broker_url, queue or routed(app, name, opts.queue),
                                  routing_key, explicit=queue is not None),
                      priority=prio, eta=when,
                      expires=deadline, created=now, options={**extra, **(message_options or {})})
    return app.middleware.before_publish(app, message)


def build_messages(app: Conveyor, name: str, options: TaskOptions | None,
                   calls: Iterable[Iterable[Any]]) -> list[Message]:
    """Messages for many calls of task ``name`` with its own options and no per-call ones
    (``Task.map``): what :func:`build_message` resolves for each call (the queue, the
    priority, the expiry, the clock) is resolved once for them all."""
    now = app.clock.time()
    opts = options or TaskOptions(queue=app.conf.default_queue)
    queue, prio = routed(app, name, opts.queue), _priority(opts.priority)
    deadline = _deadline(now, opts.expires)
    messages = [Message(new_id(), name, tuple(args), {}, queue, prio, None, deadline, 0, now, {})
                for args in calls]
    if not app.middleware.publishing:
        return messages
    return [app.middleware.before_publish(app, m) for m in messages]


def _deadline(now: float, expires: datetime | float | None) -> float | None:
    return now + expires if isinstance(expires, int | float) else epoch(expires)


def _priority(prio: object) -> int:
    if isinstance(prio, bool) or not isinstance(prio, int) or not 0 <= prio <= 9:
        raise ConfigurationError(f"priority must be an int from 0 to 9, got {prio!r}")
    return prio


def routed(app: Conveyor, name: str, declared: str) -> str:
    """The queue of task ``name``: its own when it names one, else the first ``routes``
    pattern (a glob of task names) that matches, else the default queue. A route's value is a
    queue name or Celery's ``{"queue": name}``."""
    routes = app.conf.routes
    if not routes or declared != app.conf.default_queue:
        return declared
    for pattern, target in routes.items():
        if fnmatch.fnmatchcase(name, pattern):
            found = target.get("queue") if isinstance(target, Mapping) else target
            if not isinstance(found, str) or not found:
                raise ConfigurationError(f"routes[{pattern!r}]: expected a queue name or"
                                         f" {{'queue': name}}, got {target!r}")
            return found
    return declared


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
    return envelopes(app, [message])[0]


def envelopes(app: Conveyor, messages: Sequence[Message]) -> list[Envelope]:
    """Serialize messages, each checked against ``max_message_size`` and signed when keys are
    set; the codec, the signer and the limit are looked up once for the whole batch."""
    codec, signer, limit = app.codec, app.signer, app.conf.max_message_size
    dumps, content_type = codec.dumps_message, codec.content_type
    now = app.clock.time() if signer is not None else 0.0
    out = []
    for message in messages:
        try:
            body = dumps(message.to_dict())
        except SerializationError as exc:
            raise argument_error(message, exc) from None
        if len(body) > limit:
            raise PayloadTooLarge(f"cannot send {message.task}: its message takes"
                                  f" {len(body):,} bytes, more than max_message_size"
                                  f" ({limit:,}); pass a reference (a path, a URL, a row id)"
                                  " instead of the data")
        if signer is not None:
            body = signer.sign(body, now)
        out.append(Envelope(message.id, message.queue, body, content_type, message.priority,
                            message.eta))
    return out


def publish(app: Conveyor, messages: Sequence[Message], track: bool = True) -> None:
    """Send messages in one round trip; with ``track`` record them as PENDING. A message a
    ``before_publish`` hook marked as a duplicate of a queued one is not sent."""
    messages = [m for m in messages if not is_duplicate(m)]
    if not messages:
        return
    encoded = envelopes(app, messages)
    if not track:
        app.broker.publish(encoded)
    elif app.shared_store:  # one transaction or round trip where the store can
        app.broker.publish_tracked(encoded, pending(app, messages), pending_ttl(app, messages))
    else:
        app.broker.publish(encoded)
        app.backend.store_many(pending(app, messages), pending_ttl(app, messages))
    app.middleware.after_publish(app, messages)


async def apublish(app: Conveyor, messages: Sequence[Message], track: bool = True) -> None:
    """Async form of :func:`publish`."""
    messages = [m for m in messages if not is_duplicate(m)]
    if not messages:
        return
    encoded = envelopes(app, messages)
    if not track:
        await app.broker.apublish(encoded)
    elif app.shared_store:
        await app.broker.apublish_tracked(encoded, pending(app, messages),
                                          pending_ttl(app, messages))
    else:
        await app.broker.apublish(encoded)
        await app.backend.astore_many(pending(app, messages), pending_ttl(app, messages))
    app.middleware.after_publish(app, messages)


def pending(app: Conveyor, messages: Sequence[Message]) -> list[tuple[str, StoredResult]]:
    """PENDING records; a task that keeps no STARTED state is marked so, for brokers that
    record starts themselves."""
    tracked = StoredResult(_PENDING_DATA, State.PENDING, 0, False)
    untracked = StoredResult(UNTRACKED_START, State.PENDING, 0, False)
    by_task: dict[str, StoredResult] = {}
    out = []
    for m in messages:
        record = by_task.get(m.task)
        if record is None:
            record = by_task[m.task] = tracked if _tracks_start(app, m) else untracked
        out.append((m.id, record))
    return out


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
