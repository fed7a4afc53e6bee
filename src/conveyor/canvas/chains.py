"""Chains: ``chain(a.s(1), b.s(), c.s())`` or ``a.s(1) | b.s() | c.s()``.

Each step's result is the first argument of the next (unless the next is immutable); the chain's
result handle is the last step's, typed by its return value. A step that fails for good stops
the chain: the steps after it never run and their results, the handle included, record the same
error, so ``get()`` raises it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, Self, TypeVar, overload

from ..errors import ConfigurationError
from .base import Canvas, Node, check_options

if TYPE_CHECKING:
    from ..app import Conveyor

R = TypeVar("R")


class Chain(Canvas[R]):
    """Steps run one after another; see :func:`chain`. Nested chains are flattened."""

    def __init__(self, tasks: Iterable[Canvas[Any]], options: Mapping[str, Any] | None = None
                 ) -> None:
        steps: list[Canvas[Any]] = []
        for task in tasks:
            if not isinstance(task, Canvas):
                raise ConfigurationError(f"a chain takes signatures, not {type(task).__name__}")
            if isinstance(task, Chain) and not task.options:
                steps.extend(task.tasks)
            else:
                steps.append(task)
        if not steps:
            raise ConfigurationError("a chain needs at least one step")
        self.tasks: tuple[Canvas[Any], ...] = tuple(steps)
        self.options: dict[str, Any] = dict(options or {})

    def bound_app(self) -> Conveyor | None:
        return next((a for a in (t.bound_app() for t in self.tasks) if a is not None), None)

    def set(self, **options: Any) -> Self:
        """Publish options for every step (a step's own win); ``link`` goes to the last step,
        ``link_error`` to every step (whichever fails sends it)."""
        checked = check_options(options, "chain")
        made = type(self)(self.tasks, {**self.options, **checked})
        if options.get("link") is not None:
            made = made._replace_last(made.tasks[-1].set(link=options["link"]))
        if options.get("link_error") is not None:
            made = made.on_error_all(options["link_error"])
        return made

    def link(self, callback: Canvas[Any]) -> Self:
        """A copy that sends ``callback`` with the last step's result."""
        return self.set(link=callback)

    def on_error(self, errback: Canvas[Any]) -> Self:
        """A copy in which whichever step fails sends ``errback`` with its id."""
        return self.on_error_all(errback)

    def on_error_all(self, errback: Canvas[Any] | Iterable[Canvas[Any]]) -> Self:
        return type(self)([t.set(link_error=errback) for t in self.tasks], self.options)

    def _replace_last(self, last: Canvas[Any]) -> Self:
        return type(self)((*self.tasks[:-1], last), self.options)

    def freeze(self, defaults: Mapping[str, Any] | None = None) -> Node:
        options = {**(defaults or {}), **self.options}
        return {"kind": "chain", "steps": [t.freeze(options) for t in self.tasks]}

    def __repr__(self) -> str:
        return " | ".join(repr(t) for t in self.tasks)


@overload
def chain(t1: Canvas[R], /) -> Chain[R]: ...
@overload
def chain(t1: Canvas[Any], t2: Canvas[R], /) -> Chain[R]: ...
@overload
def chain(t1: Canvas[Any], t2: Canvas[Any], t3: Canvas[R], /) -> Chain[R]: ...
@overload
def chain(t1: Canvas[Any], t2: Canvas[Any], t3: Canvas[Any], t4: Canvas[R], /) -> Chain[R]: ...
@overload
def chain(t1: Canvas[Any], t2: Canvas[Any], t3: Canvas[Any], t4: Canvas[Any], t5: Canvas[R],
          /) -> Chain[R]: ...
@overload
def chain(t1: Canvas[Any], t2: Canvas[Any], t3: Canvas[Any], t4: Canvas[Any], t5: Canvas[Any],
          t6: Canvas[R], /) -> Chain[R]: ...
@overload
def chain(tasks: Iterable[Canvas[Any]], /) -> Chain[Any]: ...
@overload
def chain(*tasks: Canvas[Any]) -> Chain[Any]: ...


def chain(*tasks: Any) -> Chain[Any]:
    """Steps run one after another, each result the first argument of the next:
    ``chain(add.s(1, 2), mul.s(10)).apply_async().get()`` is ``(1 + 2) * 10``.

    Takes signatures (or chains, groups, chords) as arguments or one iterable of them. A group
    followed by a step makes a chord: the step receives the list of the group's results.
    """
    if len(tasks) == 1 and not isinstance(tasks[0], Canvas):
        return Chain(tasks[0])
    return Chain(tasks)
