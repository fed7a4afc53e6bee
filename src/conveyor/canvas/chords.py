"""Chords: ``chord(header)(callback)`` runs ``callback`` once, with the list of the header's
results, after every header task succeeded.

Each header member counts itself, once, in an atomic set in the result backend when it succeeds
(``count_member``); the member that completes the count sends the callback, guarded by a
put-if-absent key and under an id fixed when the chord was sent. No task polls for the chord,
and the state lives in the store: a member redelivered after its worker was killed counts once
and never sends the callback twice. A member that fails for good fails the chord at once: the
callback's result records a :class:`~conveyor.errors.ChordError` naming the member, and the
callback never runs.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, Self, TypeVar, overload

from ..errors import ConfigurationError
from ..message import new_id
from .base import Canvas, Node, check_options
from .groups import Group, check_members, members

if TYPE_CHECKING:
    from ..app import Conveyor
    from ..result import AsyncResult

R = TypeVar("R")
R2 = TypeVar("R2")


class Chord(Canvas[R]):
    """A header of parallel tasks and a callback (``body``) that receives their results."""

    def __init__(self, header: Iterable[Canvas[Any]] | Group[Any], body: Canvas[R] | None = None,
                 options: Mapping[str, Any] | None = None, chord_id: str | None = None
                 ) -> None:
        self.header = check_members(header.tasks if isinstance(header, Group) else header,
                                    "a chord header")
        if body is not None and not isinstance(body, Canvas):
            raise ConfigurationError(f"a chord's callback must be a signature, not"
                                     f" {type(body).__name__}")
        self.body = body
        self.options: dict[str, Any] = dict(options or {})
        self.chord_id = chord_id

    def bound_app(self) -> Conveyor | None:
        parts = (*self.header, *(() if self.body is None else (self.body,)))
        return next((a for a in (t.bound_app() for t in parts) if a is not None), None)

    def set(self, **options: Any) -> Self:
        """Publish options for the header and the callback (a task's own win); ``link`` and
        ``link_error`` go to the callback (its errbacks also run when the chord fails)."""
        checked = check_options(options, "chord")
        body = self.body
        callbacks = {k: options[k] for k in ("link", "link_error") if options.get(k) is not None}
        if callbacks:
            body = self._body().set(**callbacks)
        return type(self)(self.header, body, {**self.options, **checked}, self.chord_id)

    def on_error(self, errback: Canvas[Any]) -> Self:
        """A copy that sends ``errback`` (with the callback's id; its result holds the
        ChordError) when the chord fails."""
        return self.set(link_error=errback)

    def freeze(self, defaults: Mapping[str, Any] | None = None) -> Node:
        options = {**(defaults or {}), **self.options}
        return {"kind": "chord", "id": self.chord_id or new_id(),
                "header": members(self.header, options), "body": self._body().freeze(options)}

    @overload
    def __call__(self, body: Canvas[R2], /, **options: Any) -> AsyncResult[R2]: ...
    @overload
    def __call__(self, body: None = None, /, **options: Any) -> AsyncResult[R]: ...

    def __call__(self, body: Canvas[Any] | None = None, /, **options: Any) -> AsyncResult[Any]:
        """``chord(header)(callback)``: send the chord with this callback now (or with its
        own, ``chord(header, callback)()``)."""
        made: Chord[Any] = self if body is None else Chord(self.header, body, self.options,
                                                           self.chord_id)
        return made.apply_async(**options)

    def _body(self) -> Canvas[R]:
        if self.body is None:
            raise ConfigurationError("this chord has no callback: chord(header)(callback) or"
                                     " chord(header, callback)")
        return self.body

    def __repr__(self) -> str:
        return f"chord([{', '.join(repr(t) for t in self.header)}], {self.body!r})"


@overload
def chord(header: Iterable[Canvas[Any]] | Group[Any], body: Canvas[R], /) -> Chord[R]: ...
@overload
def chord(header: Iterable[Canvas[Any]] | Group[Any], /) -> Chord[Any]: ...


def chord(header: Iterable[Canvas[Any]] | Group[Any], body: Canvas[Any] | None = None,
          /) -> Chord[Any]:
    """``chord(header, callback)`` (send it with ``apply_async()``) or ``chord(header)(callback)``
    (sent at once). ``header`` is a group or an iterable of signatures, chains or chords; the
    callback receives the list of their results, in header order."""
    return Chord(header, body)
