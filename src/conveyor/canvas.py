"""Signatures: a task name with arguments and options, to send now or later, one or many."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from .result import AsyncResult

if TYPE_CHECKING:
    from .app import Conveyor

R = TypeVar("R")


@dataclass(frozen=True)
class Signature(Generic[R]):
    """``task.s(*args, **kwargs)``: a call to send later, alone or in bulk with ``send_many``."""

    task: str
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)
    app: Conveyor | None = field(default=None, compare=False, repr=False)

    def set(self, **options: Any) -> Signature[R]:
        """A copy with publish options (countdown, eta, expires, priority, queue, task_id)."""
        return Signature(self.task, self.args, self.kwargs, {**self.options, **options}, self.app)

    def delay(self) -> AsyncResult[R]:
        """Send this call now."""
        return self._app().send_many([self])[0]

    def _app(self) -> Conveyor:
        if self.app is None:
            raise RuntimeError(f"signature of {self.task!r} is not bound to an app")
        return self.app
