"""Signatures: one task with (some of) its arguments and options, to send now or in a workflow.

``add.s(2, 2)`` is complete; ``add.s(2)`` is partial, completed by the previous result in a chain
(which goes first: ``add.s(2)`` after a step that returned 8 runs ``add(8, 2)``); ``add.si(2, 2)``
is immutable and ignores it. ``signature("shop.add", args=(2, 2), app=app)`` names a task
without importing its code.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Self, TypeVar

from ..errors import ConfigurationError
from ..message import new_id
from .base import Canvas, Node, as_callbacks, check_options

if TYPE_CHECKING:
    from ..app import Conveyor

R = TypeVar("R")


@dataclass(frozen=True)
class Signature(Canvas[R]):
    """``task.s(*args, **kwargs)``: a call to send later, alone, in bulk with ``send_many``, or
    as a step of a chain, group or chord. Typed by the task's return value.

    ``options`` are publish options (countdown, eta, expires, priority, queue, task_id);
    ``immutable`` signatures ignore the previous step's result; ``links`` are sent with this
    task's result when it succeeds, ``errbacks`` with its id when it fails for good.
    """

    task: str
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)
    app: Conveyor | None = field(default=None, compare=False, repr=False)
    immutable: bool = False
    links: tuple[Canvas[Any], ...] = ()
    errbacks: tuple[Canvas[Any], ...] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.task, str) or not self.task:
            raise ConfigurationError(f"a signature needs a task name, got {self.task!r}")

    def bound_app(self) -> Conveyor | None:
        return self.app

    def set(self, **options: Any) -> Self:
        """A copy with publish options (countdown, eta, expires, priority, queue, task_id) and
        callbacks (``link=sig`` or a list, ``link_error=sig`` or a list) added."""
        checked = check_options(options, f"signature of {self.task}")
        return replace(self, options={**self.options, **checked},
                       links=self.links + as_callbacks(options.get("link"), "link"),
                       errbacks=self.errbacks + as_callbacks(options.get("link_error"),
                                                             "link_error"))

    def link(self, callback: Canvas[Any]) -> Self:
        """A copy that sends ``callback`` with this task's result when it succeeds."""
        return replace(self, links=(*self.links, callback))

    def on_error(self, errback: Canvas[Any]) -> Self:
        """A copy that sends ``errback`` with this task's id when it fails for good (its
        retries exhausted); ``AsyncResult(id).result`` is the exception."""
        return replace(self, errbacks=(*self.errbacks, errback))

    def clone(self, args: Iterable[Any] = (), kwargs: Mapping[str, Any] | None = None,
              **options: Any) -> Self:
        """A copy with ``args`` before its own (unless immutable), keywords and options over
        its own."""
        merged = self.args if self.immutable else (*args, *self.args)
        return replace(self, args=merged, kwargs={**self.kwargs, **(kwargs or {})}).set(
            **options)

    @property
    def id(self) -> str | None:
        """The task id chosen with ``set(task_id=...)``, or None (one is drawn at send)."""
        value = self.options.get("task_id")
        return None if value is None else str(value)

    def freeze(self, defaults: Mapping[str, Any] | None = None) -> Node:
        options = {**(defaults or {}), **self.options}
        node: Node = {"kind": "task", "id": options.pop("task_id", None) or new_id(),
                      "task": self.task}
        # Only what is set: a chord's callback rides in each of its header's messages
        for key, value in (("args", list(self.args)), ("kwargs", dict(self.kwargs)),
                           ("options", options), ("immutable", self.immutable),
                           ("link", [c.freeze() for c in self.links]),
                           ("link_error", [c.freeze() for c in self.errbacks])):
            if value:
                node[key] = value
        return node

    def __call__(self, *args: Any, **kwargs: Any) -> R:
        """Run the task here and now, as a plain call (with ``args`` before its own)."""
        app = self._app()
        task = app.tasks.get(self.task)
        if task is None:
            raise ConfigurationError(f"no task named {self.task!r} in app {app.name!r}")
        merged = self.args if self.immutable else (*args, *self.args)
        result: R = task(*merged, **{**self.kwargs, **kwargs})
        return result

    def __repr__(self) -> str:
        parts = [repr(a) for a in self.args] + [f"{k}={v!r}" for k, v in self.kwargs.items()]
        mark = "si" if self.immutable else "s"
        return f"{self.task}.{mark}({', '.join(parts)})"


def signature(task: str, args: Iterable[Any] = (), kwargs: Mapping[str, Any] | None = None,
              *, app: Conveyor | None = None, immutable: bool = False,
              **options: Any) -> Signature[Any]:
    """A signature by task name: ``signature("shop.add", args=(2, 2), app=app)``. Without
    ``app`` it can still be a step of a workflow that holds a bound signature."""
    return Signature(task, tuple(args), dict(kwargs or {}), app=app,
                     immutable=immutable).set(**options)
