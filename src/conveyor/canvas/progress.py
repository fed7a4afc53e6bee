"""What a worker does when a workflow task ends, before its message is acknowledged.

On success: send the next step of its chain and its ``link`` callbacks, and count it in its
chord (the count's last member sends the callback). On a final failure: send its ``link_error``
callbacks, record the error on every step that will now never run, and fail the chords that
waited for it. Every step is safe to repeat: a worker killed half-way leaves the message to be
delivered again, and the redelivery finishes the job without doing any part twice (ids fixed
when the workflow was sent, an idempotent member count, a put-if-absent guard on each chord).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .completion import chord_failed, fail_steps, member_succeeded
from .launch import Plan, send_once
from .nodes import chords_in, task_nodes

if TYPE_CHECKING:
    from ..app import Conveyor
    from ..message import Message
    from ..outcome import ErrorInfo
    from .base import Node

WORKFLOW_OPTIONS = ("chain", "chord", "link", "link_error")


def in_workflow(message: Message) -> bool:
    """True when something waits for this message's outcome."""
    options = message.options
    return bool(options) and any(key in options for key in WORKFLOW_OPTIONS)


def _plan(app: Conveyor, message: Message) -> Plan:
    return Plan(app, str(message.options.get("root_id", message.id)), parent=message.id)


async def succeeded(app: Conveyor, message: Message, value: Any, redelivered: bool) -> None:
    """Send what follows ``message``'s success, then count it in its chord."""
    options = message.options
    plan = _plan(app, message)
    for link in options.get("link", ()):
        plan.add(link, (value,))
    rest: list[Node] = options.get("chain") or []
    if rest:
        plan.add(rest[0], (value,), None, rest[1:])
    await send_once(plan, redelivered)
    if "chord" in options:
        await member_succeeded(app, options["chord"], message)


async def failed(app: Conveyor, message: Message, error: ErrorInfo, redelivered: bool) -> None:
    """Send ``message``'s errbacks, fail every step after it and the chords waiting for it."""
    options = message.options
    plan = _plan(app, message)
    for errback in options.get("link_error", ()):
        plan.add(errback, (message.id,))
    await send_once(plan, redelivered)
    rest: list[Node] = options.get("chain") or []
    await fail_steps(app, [t for node in rest for t in task_nodes(node)], error)
    chords = [c for node in rest for c in chords_in(node)]
    if "chord" in options:
        chords.insert(0, options["chord"])
    for chord in chords:
        await chord_failed(app, chord, message.id, message.task, error, redelivered)
