"""Completing and failing chords, from the worker that settles a header member.

Keys in the result backend, all kept for ``result_ttl``: ``group:<id>`` the header's member ids
(stored when the chord is sent), the member set ``chord:<id>`` (``count_member``), and
``chord:<id>:fired``, the guard that lets one member send the callback, or fail it, once:
``claimed:<member>`` while that member sends it, ``sent`` after, ``failed:<member>``.

A member that dies after claiming the guard but before sending is delivered again and finds its
own claim, so it sends the callback under the id fixed when the chord was sent (unless its
record shows an earlier send got it running). Another member never sends it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import orjson

from ..errors import ChordError
from ..outcome import ErrorInfo, Outcome
from ..states import State
from .launch import Plan, coordination, group_key, send_once
from .nodes import chords_in, entry_tasks, task_nodes

if TYPE_CHECKING:
    from ..app import Conveyor
    from ..message import Message
    from .base import Node

#: The fencing attempt of outcomes written for steps that will never run: above any real
#: attempt, below a revoke's (which outranks everything).
FAILED_ATTEMPT = 2**61
SENT = b"sent"


def fired_key(chord_id: str) -> str:
    return f"chord:{chord_id}:fired"


async def member_succeeded(app: Conveyor, chord: dict[str, Any], message: Message) -> None:
    """Count ``message`` in its chord; the member that completes the count sends the callback."""
    chord_id = chord["id"]
    count = await app.backend.count_member(f"chord:{chord_id}", message.id, app.result_ttl)
    if count < chord["size"]:
        return
    guard = coordination(app)
    mine = b"claimed:" + message.id.encode()
    held = await guard.aput_if_absent(fired_key(chord_id), mine, app.result_ttl)
    if held is not None and held != mine:
        return  # sent, being sent by another member, or failed
    try:
        values = await gather(app, chord_id)
    except ChordError as exc:
        error = ErrorInfo.from_exception(exc)
        await guard.aset_value(fired_key(chord_id), b"failed:" + message.id.encode(),
                               app.result_ttl)
        await fail_callback(app, chord, message.id, error, redelivered=True)
        return
    plan = Plan(app, chord.get("root", chord_id), parent=chord_id)
    plan.add(chord["body"], (values,))
    await send_once(plan, redelivered=held is not None)
    await guard.aset_value(fired_key(chord_id), SENT, app.result_ttl)


async def gather(app: Conveyor, chord_id: str) -> list[Any]:
    """The header's values in order; ChordError if one is not a success (expired, lost)."""
    stored = await coordination(app).aget_value(group_key(chord_id))
    if stored is None:
        raise ChordError(f"chord {chord_id}: its member list is gone (older than result_ttl?)")
    ids: list[str] = orjson.loads(stored)
    values = []
    for member, record in zip(ids, await app.backend.aget_many(ids), strict=True):
        found = None if record is None else Outcome.decode(app.codec, record)
        if found is None or found.state is not State.SUCCESS:
            state = State.UNKNOWN if found is None else found.state
            raise ChordError(f"chord {chord_id}: member {member} is {state}, not SUCCESS")
        values.append(found.value)
    return values


async def chord_failed(app: Conveyor, chord: dict[str, Any], member_id: str, member_task: str,
                       error: ErrorInfo, redelivered: bool) -> None:
    """Fail the chord at once because member ``member_id`` failed: the callback never runs."""
    chord_id = chord["id"]
    mark = b"failed:" + member_id.encode()
    held = await coordination(app).aput_if_absent(fired_key(chord_id), mark, app.result_ttl)
    if held is not None and held != mark:
        return
    text = (f"chord {chord_id} failed: member {member_task}[{member_id}] raised"
            f" {error.type}: {error.message}")
    info = ErrorInfo("conveyor.errors.ChordError", text, error.traceback, (text,))
    await fail_callback(app, chord, member_id, info, redelivered or held is not None)


async def fail_callback(app: Conveyor, chord: dict[str, Any], member_id: str,
                        info: ErrorInfo, redelivered: bool) -> None:
    """Record ``info`` on the callback and what follows it, send its errbacks (with the
    callback's id), and fail the chords that wait for it in turn."""
    body: Node = chord["body"]
    await fail_steps(app, task_nodes(body), info)
    chord_id = chord["id"]
    plan = Plan(app, chord.get("root", chord_id), parent=member_id)
    for entry in entry_tasks(body):
        for errback in entry.get("link_error", ()):
            plan.add(errback, (entry["id"],))
    await send_once(plan, redelivered)
    first = entry_tasks(body)[0]
    for inner in chords_in(body):
        if inner["id"] != chord_id:
            await chord_failed(app, inner, first["id"], first["task"], info, redelivered)


async def fail_steps(app: Conveyor, tasks: Sequence[Node], error: ErrorInfo) -> None:
    """Record ``error`` as the outcome of tasks that will never run (one round trip)."""
    if not tasks:
        return
    now = app.clock.time()
    records = [(t["id"], Outcome(State.FAILURE, error=error, task=t["task"], at=now).encode(
        app.codec, FAILED_ATTEMPT)) for t in tasks]
    await app.backend.astore_many(records, app.result_ttl)

