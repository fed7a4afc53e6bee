"""What every piece of a workflow shares: :class:`Canvas`, and the checked publish options.

A canvas is a signature, a chain, a group or a chord. Sending one *freezes* it first: every task
in it gets its id, so the result handle is known before anything runs, and the whole remaining
workflow is written into the first messages (see :mod:`conveyor.canvas.nodes`). From then on the
workflow lives in the broker and the result backend, never in one worker's memory.
"""

from __future__ import annotations

import functools
import inspect
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Generic, Self, TypeVar

from ..errors import ConfigurationError
from ..sending import build_message, epoch

if TYPE_CHECKING:
    from ..app import Conveyor
    from ..result import AsyncResult
    from .chains import Chain

R = TypeVar("R")
R2 = TypeVar("R2")

#: A frozen canvas in its wire form: plain dicts and lists any serializer can carry.
Node = dict[str, Any]

#: Options a canvas takes besides the publish options: callbacks on success and on failure.
CALLBACKS = ("link", "link_error")


@functools.cache
def publish_options() -> frozenset[str]:
    """The per-call options ``build_message`` takes (countdown, eta, expires, priority, queue,
    task_id, and whatever the producer path learns later), read from its signature."""
    params = inspect.signature(build_message).parameters.values()
    return frozenset(p.name for p in params
                     if p.kind is inspect.Parameter.KEYWORD_ONLY and p.name != "message_options")


def check_options(options: Mapping[str, Any], where: str) -> dict[str, Any]:
    """Publish options in their wire form (datetimes as epoch seconds, durations as seconds);
    an unknown name is a ConfigurationError that lists the known ones."""
    known = publish_options()
    unknown = sorted(set(options) - known - set(CALLBACKS))
    if unknown:
        raise ConfigurationError(
            f"{where}: unknown option {', '.join(map(repr, unknown))}; valid options:"
            f" {', '.join(sorted(known | set(CALLBACKS)))}")
    checked = {k: v for k, v in options.items() if k not in CALLBACKS}
    for name in ("eta", "expires"):
        if name in checked and not isinstance(checked[name], int | float | None):
            checked[name] = epoch(checked[name])
    for name, value in checked.items():  # they travel in messages: seconds, not timedeltas
        if isinstance(value, timedelta):
            checked[name] = value.total_seconds()
    return checked


def as_callbacks(value: Canvas[Any] | Iterable[Canvas[Any]] | None, name: str
                 ) -> tuple[Canvas[Any], ...]:
    """``link=sig`` or ``link=[sig, ...]`` as a tuple of canvases."""
    if value is None:
        return ()
    found = (value,) if isinstance(value, Canvas) else tuple(value)
    for item in found:
        if not isinstance(item, Canvas):
            raise ConfigurationError(f"{name} takes signatures, not {type(item).__name__}")
    return found


class Canvas(ABC, Generic[R]):
    """A call, or a workflow of calls, to send now or later: ``apply_async()``, ``delay()``.

    ``a | b`` chains two canvases: ``b`` receives ``a``'s result as its first argument. The
    result handle of any canvas is typed by what its last step returns.
    """

    @abstractmethod
    def bound_app(self) -> Conveyor | None:
        """The app this canvas sends through (the first bound task's), or None."""

    @abstractmethod
    def freeze(self, defaults: Mapping[str, Any] | None = None) -> Node:
        """The wire form with fresh ids for every task that has none; ``defaults`` are publish
        options of an enclosing workflow (a task's own options win)."""

    @abstractmethod
    def set(self, **options: Any) -> Self:
        """A copy with publish options (countdown, eta, expires, priority, queue, ...) and
        callbacks (``link``, ``link_error``)."""

    @abstractmethod
    def on_error(self, errback: Canvas[Any]) -> Self:
        """A copy that sends ``errback`` (with the failed task's id as its first argument)
        when the call fails for good."""

    def apply_async(self, args: Iterable[Any] = (), kwargs: Mapping[str, Any] | None = None,
                    **options: Any) -> AsyncResult[R]:
        """Send now. ``args`` go before the canvas's own arguments of its first task(s)
        (completing a partial signature), ``kwargs`` over its keywords; ``options`` as for
        :meth:`set`. Returns the handle of the last step's result."""
        from .launch import apply

        target = self.set(**options) if options else self
        return apply(self._app(), target.freeze(), tuple(args), dict(kwargs or {}))

    async def aapply_async(self, args: Iterable[Any] = (),
                           kwargs: Mapping[str, Any] | None = None,
                           **options: Any) -> AsyncResult[R]:
        """Async form of :meth:`apply_async`."""
        from .launch import aapply

        target = self.set(**options) if options else self
        return await aapply(self._app(), target.freeze(), tuple(args), dict(kwargs or {}))

    def delay(self, *args: Any, **kwargs: Any) -> AsyncResult[R]:
        """Send now, with ``args`` before the canvas's own arguments (a partial completed)."""
        return self.apply_async(args, kwargs)

    async def adelay(self, *args: Any, **kwargs: Any) -> AsyncResult[R]:
        """Async form of :meth:`delay`."""
        return await self.aapply_async(args, kwargs)

    def __or__(self, other: Canvas[R2]) -> Chain[R2]:
        """``a | b``: a chain in which ``b`` receives ``a``'s result."""
        from .chains import Chain

        if not isinstance(other, Canvas):
            return NotImplemented
        return Chain((self, other))

    def _app(self) -> Conveyor:
        app = self.bound_app()
        if app is None:
            raise ConfigurationError(
                f"{self!r} is not bound to an app: make signatures with task.s(...) or"
                " app.signature(...), or pass app= to conveyor.signature(...)")
        return app
