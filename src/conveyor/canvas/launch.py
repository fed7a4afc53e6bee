"""Sending frozen workflows: a node becomes the messages of its first tasks, each carrying what
comes after it (``chain``, ``chord``, ``link``, ``link_error``) and where it comes from
(``root_id``, ``parent_id``, ``group_id``) in its options.

One :class:`Plan` is built the same way by producers (``apply_async``) and by workers (the next
step of a chain, a chord's callback); only the sending differs, blocking or async. Every message
of a plan goes out in one publish round trip, after the memberships of the chords it starts were
stored (a chord's last member reads them).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

import orjson

from ..brokers import Coordination, StoredResult
from ..errors import ConfigurationError
from ..message import Message
from ..result import AsyncResult
from ..sending import pending_ttl
from ..states import State
from .nodes import all_ids, attach_chord, final_id, handle, root_id, with_rest

if TYPE_CHECKING:
    from ..app import Conveyor
    from .base import Node
    from .signatures import Signature

R = TypeVar("R")


def group_key(group_id: str) -> str:
    """The Coordination key holding a group's (or chord header's) member ids."""
    return f"group:{group_id}"


def coordination(app: Conveyor) -> Coordination:
    """The result backend as a Coordination store, or ConfigurationError saying what needs it."""
    backend = app.backend
    if not isinstance(backend, Coordination):
        raise ConfigurationError(f"the result backend {backend.url} keeps no coordination values,"
                                 " which chords, saved groups and periodic tasks need")
    return backend


@dataclass
class Plan:
    """The messages that send a node, and the group memberships to store first."""

    app: Conveyor
    root: str | None  # None: each node sent is a workflow of its own
    parent: str | None = None
    messages: list[Message] = field(default_factory=list)
    saves: list[tuple[str, bytes]] = field(default_factory=list)

    def add(self, node: Node, head: tuple[Any, ...] = (), kwargs: dict[str, Any] | None = None,
            rest: Sequence[Node] = (), group: str | None = None) -> None:
        """Plan ``node`` with ``head`` before its first tasks' arguments and ``rest`` after it."""
        kind, extra = node["kind"], dict(kwargs or {})
        if kind == "task":
            self._task(node, head, extra, list(rest), group)
        elif kind == "chain":
            steps = node["steps"]
            self.add(steps[0], head, extra, [*steps[1:], *rest], group)
        elif kind == "chord":
            self._chord(node["id"], node["header"], node["body"], head, extra, list(rest))
        elif rest:  # a group followed by a step is a chord over the group
            self._chord(node["id"], node["members"], rest[0], head, extra, list(rest[1:]))
        else:
            for member in node["members"]:
                self.add(member, head, extra, (), node["id"])

    def _chord(self, chord_id: str, header: list[Node], body: Node, head: tuple[Any, ...],
               kwargs: dict[str, Any], rest: list[Node]) -> None:
        callback = with_rest(body, rest)
        if not header:  # nothing to wait for: the callback runs at once, with no results
            self.add(callback, ([],), {}, (), None)
            return
        attached = {"id": chord_id, "size": len(header), "body": callback, "root": self.root}
        self.saves.append((group_key(chord_id), orjson.dumps([final_id(m) for m in header])))
        for member in header:
            self.add(attach_chord(member, attached), head, kwargs, (), chord_id)

    def _task(self, node: Node, head: tuple[Any, ...], kwargs: dict[str, Any],
              rest: list[Node], group: str | None) -> None:
        immutable, own = node.get("immutable", False), tuple(node.get("args", ()))
        args = own if immutable else (*head, *own)
        merged = dict(node.get("kwargs") or {}) if immutable else {**node.get("kwargs", {}),
                                                                     **kwargs}
        options: dict[str, Any] = dict(node.get("extra") or {})
        if rest:
            options["chain"] = rest
        for key in ("link", "link_error", "chord"):
            if node.get(key):
                options[key] = node[key]
        if self.root is not None and self.root != node["id"]:
            options["root_id"] = self.root
        for key, value in (("parent_id", self.parent), ("group_id", group)):
            if value is not None:
                options[key] = value
        task = self.app.tasks.get(node["task"])
        self.messages.append(self.app.build_message(
            node["task"], task.options if task else None, args, merged, task_id=node["id"],
            message_options=options, **node.get("options", {})))


def _split(app: Conveyor, messages: list[Message]) -> tuple[list[Message], list[Message]]:
    """Messages whose outcome is recorded (PENDING at publish), and those of ignore_result
    tasks."""
    quiet = {name for name, task in app.tasks.items() if task.options.ignore_result}
    return ([m for m in messages if m.task not in quiet], [m for m in messages if m.task in quiet])


def _pending(ids: Sequence[str]) -> list[tuple[str, StoredResult]]:
    return [(i, StoredResult(b"", State.PENDING, 0, False)) for i in ids]


def send(plan: Plan, later: Sequence[str] = ()) -> None:
    """Store the plan's memberships, publish its messages, record ``later`` ids as PENDING."""
    app = plan.app
    for key, value in plan.saves:
        coordination(app).set_value(key, value, app.result_ttl)
    tracked, quiet = _split(app, plan.messages)
    if tracked:
        app.publish(tracked)
    if quiet:
        app.publish(quiet, track=False)
    if later:
        app.backend.store_many(_pending(later), pending_ttl(app, plan.messages))


async def asend(plan: Plan, later: Sequence[str] = ()) -> None:
    """Async form of :func:`send`."""
    app = plan.app
    for key, value in plan.saves:
        await coordination(app).aset_value(key, value, app.result_ttl)
    tracked, quiet = _split(app, plan.messages)
    if tracked:
        await app.apublish(tracked)
    if quiet:
        await app.apublish(quiet, track=False)
    if later:
        await app.backend.astore_many(_pending(later), pending_ttl(app, plan.messages))


def _prepare(app: Conveyor, node: Node, head: tuple[Any, ...], kwargs: dict[str, Any]
             ) -> tuple[Plan, list[str]]:
    plan = Plan(app, root_id(node))
    plan.add(node, head, kwargs)
    sent = {m.id for m in plan.messages}
    return plan, [i for i in all_ids(node) if i not in sent]


def apply(app: Conveyor, node: Node, head: tuple[Any, ...] = (),
          kwargs: dict[str, Any] | None = None) -> AsyncResult[Any]:
    """Send a frozen workflow from a producer; the handle of its result."""
    plan, later = _prepare(app, node, head, kwargs or {})
    send(plan, later)
    return handle(app, node)


def send_many(app: Conveyor, signatures: Sequence[Signature[R]]) -> list[AsyncResult[R]]:
    """Send independent signatures in one round trip; their handles in order."""
    plan = Plan(app, None)
    nodes = [s.freeze() for s in signatures]
    for node in nodes:
        plan.add(node)
    send(plan)
    return [AsyncResult[R](node["id"], app) for node in nodes]


async def aapply(app: Conveyor, node: Node, head: tuple[Any, ...] = (),
                 kwargs: dict[str, Any] | None = None) -> AsyncResult[Any]:
    """Async form of :func:`apply`."""
    plan, later = _prepare(app, node, head, kwargs or {})
    await asend(plan, later)
    return handle(app, node)


async def send_once(plan: Plan, redelivered: bool) -> None:
    """Send the plan; on a redelivery, without what an earlier delivery already got running
    (ids are fixed, so a message still waiting in its queue is only replaced by itself)."""
    if redelivered and plan.messages:
        records = await plan.app.backend.aget_many([m.id for m in plan.messages])
        plan.messages = [m for m, rec in zip(plan.messages, records, strict=True)
                         if rec is None or rec.state == State.PENDING]
    if plan.messages or plan.saves:
        await asend(plan)
