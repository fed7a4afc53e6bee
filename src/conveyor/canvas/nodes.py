"""Frozen workflows (nodes): the plain-dict form a canvas takes once its ids are drawn.

Kinds: ``task`` (id, task, args, kwargs, options, immutable, link, link_error; and, once placed
in a chord header, ``chord``: the chord id, its size and its callback), ``chain`` (steps),
``group`` (id, members) and ``chord`` (id, header, body). Nodes travel in message options, so
what is left of a workflow is always in the broker, not in a worker's memory.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..errors import ConfigurationError
from .base import Node

if TYPE_CHECKING:
    from ..app import Conveyor
    from ..result import AsyncResult


def final_id(node: Node) -> str:
    """The id of the task whose result is this node's result (a group has none)."""
    kind = node["kind"]
    if kind == "task":
        return str(node["id"])
    if kind == "chain":
        return final_id(node["steps"][-1])
    if kind == "chord":
        return final_id(node["body"])
    raise ConfigurationError("a chain that ends in a group cannot be a member of a group or a"
                             " chord header; make the inner group a chord instead")


def task_nodes(node: Node) -> list[Node]:
    """Every task of the node (callbacks sent by ``link`` and ``link_error`` excepted)."""
    kind = node["kind"]
    if kind == "task":
        return [node]
    if kind == "chain":
        return [t for step in node["steps"] for t in task_nodes(step)]
    if kind == "group":
        return [t for member in node["members"] for t in task_nodes(member)]
    return [*(t for m in node["header"] for t in task_nodes(m)), *task_nodes(node["body"])]


def all_ids(node: Node) -> list[str]:
    """The result ids of every task of the node."""
    return [t["id"] for t in task_nodes(node)]


def root_id(node: Node) -> str:
    """The id a workflow is known by: its first task's, or its group's or chord's."""
    return str(root_id(node["steps"][0]) if node["kind"] == "chain" else node["id"])


def with_rest(node: Node, rest: list[Node]) -> Node:
    """``node`` followed by the steps ``rest``."""
    return {"kind": "chain", "steps": [node, *rest]} if rest else node


def attach_chord(node: Node, chord: dict[str, Any]) -> Node:
    """A copy of a header member whose final task counts itself in ``chord`` when it succeeds."""
    kind = node["kind"]
    if kind == "task":
        return {**node, "chord": chord}
    if kind == "chain":
        return {**node, "steps": [*node["steps"][:-1], attach_chord(node["steps"][-1], chord)]}
    if kind == "chord":
        return {**node, "body": attach_chord(node["body"], chord)}
    final_id(node)  # raises: a group has no single result
    raise AssertionError("unreachable")


def chords_in(node: Node) -> list[dict[str, Any]]:
    """The chords that wait for a task of this node (to fail them when it cannot run)."""
    return [t["chord"] for t in task_nodes(node) if "chord" in t]


def entry_tasks(node: Node) -> list[Node]:
    """The task nodes that run first when ``node`` is sent."""
    kind = node["kind"]
    if kind == "task":
        return [node]
    if kind == "chain":
        return entry_tasks(node["steps"][0])
    return [t for m in node["members" if kind == "group" else "header"] for t in entry_tasks(m)]


def handle(app: Conveyor, node: Node) -> AsyncResult[Any]:
    """The result handle of a frozen node: its last task's AsyncResult, or a GroupResult when
    it ends in a group."""
    from ..result import AsyncResult
    from .results import GroupResult

    kind = node["kind"]
    if kind == "chain":
        return handle(app, node["steps"][-1])
    if kind == "chord":
        return handle(app, node["body"])
    if kind == "group":
        return GroupResult(node["id"], [AsyncResult[Any](final_id(m), app)
                                        for m in node["members"]], app)
    return AsyncResult(node["id"], app)
