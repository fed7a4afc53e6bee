"""What a task ended with, as stored in the result backend, and how errors cross processes."""

from __future__ import annotations

import builtins
import sys
import time
import traceback
from dataclasses import dataclass, field, replace
from typing import Any

from .brokers.base import UNTRACKED_START, StoredResult
from .errors import ConveyorError, SerializationError, TaskFailed
from .serializers import Codec, describe_path
from .states import State


class RemoteTraceback(Exception):
    """Carries the worker-side traceback text; set as ``__cause__`` of a re-raised task error."""

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.text = text

    def __str__(self) -> str:
        return f"\n\nRemote traceback:\n{self.text}"


@dataclass(frozen=True, slots=True)
class ErrorInfo:
    """A task's exception: qualified type name, message, constructor args and traceback text."""

    type: str
    message: str
    traceback: str = ""
    args: tuple[Any, ...] = ()

    @classmethod
    def from_exception(cls, exc: BaseException) -> ErrorInfo:
        kind = type(exc)
        name = kind.__qualname__ if kind.__module__ == "builtins" else (
            f"{kind.__module__}.{kind.__qualname__}")
        text = "".join(traceback.format_exception(exc))
        return cls(name, str(exc), text, tuple(exc.args))

    def rebuild(self) -> BaseException:
        """The original exception type when it is importable here, else :class:`TaskFailed`.

        Only modules already imported are searched: reading a result never imports code.
        """
        kind = _find_exception_type(self.type)
        exc: BaseException | None = None
        if kind is not None:
            try:
                exc = kind(*self.args)
            except Exception:
                exc = None
        if exc is None:
            exc = TaskFailed(self.type, self.message, self.traceback)
        exc.__cause__ = RemoteTraceback(self.traceback)
        return exc

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.type, "message": self.message, "traceback": self.traceback,
                "args": list(self.args)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ErrorInfo:
        return cls(data["type"], data["message"], data.get("traceback", ""),
                   tuple(data.get("args", ())))


def _find_exception_type(name: str) -> type[BaseException] | None:
    module_name, _, qualname = name.rpartition(".")
    module = sys.modules.get(module_name) if module_name else builtins
    found: Any = module
    for part in qualname.split("."):
        found = getattr(found, part, None)
    if isinstance(found, type) and issubclass(found, BaseException):
        return found
    return None


@dataclass(frozen=True, slots=True)
class Outcome:
    """A task's state with its value or error, retry count, task name and time (epoch s)."""

    state: State
    value: Any = None
    error: ErrorInfo | None = None
    retries: int = 0
    task: str = ""
    at: float = field(default_factory=time.time)

    def encode(self, codec: Codec, attempt: int) -> StoredResult:
        """Serialize for the backend. A value that cannot be encoded becomes a FAILURE."""
        try:
            data = codec.dumps(self._to_dict())
        except SerializationError as exc:
            if self.error is not None and exc.path[:1] == ("error",) and self.error.args:
                plain = replace(self.error, args=(self.error.message,))  # type and trace kept
                return replace(self, error=plain).encode(codec, attempt)
            where = describe_path(exc.path[2:] if exc.path[:1] == ("value",) else (), "result")
            error = SerializationError(
                f"the result of task {self.task or '?'} ({type(self.value).__name__}) cannot be"
                f" encoded with {codec.content_type}: {where}: {exc.why}", exc.path, exc.why)
            failed = Outcome(State.FAILURE, error=ErrorInfo.from_exception(error),
                             retries=self.retries, task=self.task, at=self.at)
            data = codec.dumps(failed._to_dict())
            return StoredResult(data, State.FAILURE, attempt, True)
        return StoredResult(data, self.state, attempt, self.state.final)

    def _to_dict(self) -> dict[str, Any]:
        return {"state": str(self.state), "value": self.value, "retries": self.retries,
                "error": None if self.error is None else self.error.to_dict(),
                "task": self.task, "at": self.at}

    @classmethod
    def decode(cls, codec: Codec, record: StoredResult) -> Outcome:
        if not record.data or record.data == UNTRACKED_START:  # a bare state marker
            return cls(State(record.state), at=0.0)
        data = codec.serializer.loads(record.data)
        if not isinstance(data, dict):
            raise ConveyorError(f"result record is not an object: {type(data).__name__}")
        error = data.get("error")
        return cls(State(data["state"]), data.get("value"),
                   None if error is None else ErrorInfo.from_dict(error),
                   data.get("retries", 0), data.get("task", ""), data.get("at", 0.0))
