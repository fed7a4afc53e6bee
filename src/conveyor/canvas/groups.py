"""Groups: ``group(add.s(i, i) for i in range(100))`` runs its members in parallel.

Every member is published in one round trip (one transaction, one pipeline) where the broker
allows. ``apply_async()`` returns a :class:`~conveyor.canvas.results.GroupResult` whose
``get()`` gives the members' values in order.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, Self, TypeVar, cast, overload

from ..errors import ConfigurationError
from ..message import new_id
from .base import Canvas, Node, check_options

if TYPE_CHECKING:
    from ..app import Conveyor
    from .results import GroupResult

R = TypeVar("R")


def members(tasks: Iterable[Canvas[Any]], options: Mapping[str, Any]) -> list[Node]:
    """The frozen members of a group or chord header; nested groups are flattened into it."""
    out: list[Node] = []
    for task in tasks:
        node = task.freeze(options)
        if node["kind"] == "group":
            out.extend(node["members"])
        else:
            out.append(node)
    return out


def check_members(tasks: Iterable[Any], what: str) -> tuple[Canvas[Any], ...]:
    found = tuple(tasks)
    for task in found:
        if not isinstance(task, Canvas):
            raise ConfigurationError(f"{what} takes signatures, not {type(task).__name__}")
    return found


class Group(Canvas[list[R]]):
    """Members run in parallel; see :func:`group`. Typed as the list of its members' values."""

    def __init__(self, tasks: Iterable[Canvas[R]], options: Mapping[str, Any] | None = None,
                 group_id: str | None = None) -> None:
        self.tasks: tuple[Canvas[Any], ...] = check_members(tasks, "a group")
        self.options: dict[str, Any] = dict(options or {})
        self.group_id = group_id

    def bound_app(self) -> Conveyor | None:
        return next((a for a in (t.bound_app() for t in self.tasks) if a is not None), None)

    def set(self, **options: Any) -> Self:
        """Publish options for every member (a member's own win); ``link`` and
        ``link_error`` go to every member."""
        checked = check_options(options, "group")
        tasks = self.tasks
        callbacks = {k: options[k] for k in ("link", "link_error") if options.get(k) is not None}
        if callbacks:
            tasks = tuple(t.set(**callbacks) for t in tasks)
        return type(self)(tasks, {**self.options, **checked}, self.group_id)

    def on_error(self, errback: Canvas[Any]) -> Self:
        """A copy in which every member that fails sends ``errback`` with its id."""
        return self.set(link_error=errback)

    def freeze(self, defaults: Mapping[str, Any] | None = None) -> Node:
        options = {**(defaults or {}), **self.options}
        return {"kind": "group", "id": self.group_id or new_id(),
                "members": members(self.tasks, options)}

    def apply_async(self, args: Iterable[Any] = (), kwargs: Mapping[str, Any] | None = None,
                    **options: Any) -> GroupResult[R]:
        """Send every member now, in one round trip; ``args`` go before each member's own."""
        return cast("GroupResult[R]", super().apply_async(args, kwargs, **options))

    async def aapply_async(self, args: Iterable[Any] = (),
                           kwargs: Mapping[str, Any] | None = None,
                           **options: Any) -> GroupResult[R]:
        """Async form of :meth:`apply_async`."""
        return cast("GroupResult[R]", await super().aapply_async(args, kwargs, **options))

    def delay(self, *args: Any, **kwargs: Any) -> GroupResult[R]:
        return self.apply_async(args, kwargs)

    async def adelay(self, *args: Any, **kwargs: Any) -> GroupResult[R]:
        return await self.aapply_async(args, kwargs)

    def __len__(self) -> int:
        return len(self.tasks)

    def __repr__(self) -> str:
        return f"group({', '.join(repr(t) for t in self.tasks)})"


@overload
def group(tasks: Iterable[Canvas[R]], /) -> Group[R]: ...
@overload
def group(*tasks: Canvas[R]) -> Group[R]: ...


def group(*tasks: Any) -> Group[Any]:
    """Members that run in parallel: ``group(add.s(i, i) for i in range(10)).apply_async()``.

    Takes signatures (or chains, chords) as arguments or one iterable of them; groups inside a
    group are flattened into it.
    """
    if len(tasks) == 1 and not isinstance(tasks[0], Canvas):
        return Group(tasks[0])
    return Group(tasks)
