"""The task message: the one envelope that crosses the wire between producers and workers."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from .errors import MalformedMessage

PROTOCOL = 1


def new_id() -> str:
    """A fresh task id (a random UUID4 in hex with dashes, like Celery's)."""
    return str(uuid.uuid4())


@dataclass(frozen=True, slots=True)
class Message:
    """One task invocation.

    Times are epoch seconds (floats). ``retries`` counts explicit retries so far; ``eta`` is when
    it may run at the earliest; ``expires`` is when, if not yet started, it must not run at all.
    ``options`` carries per-call overrides and workflow links (``link``, ``link_error``, ``chord``).
    """

    id: str
    task: str
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = field(default_factory=dict)
    queue: str = "default"
    priority: int = 0
    eta: float | None = None
    expires: float | None = None
    retries: int = 0
    created: float = field(default_factory=time.time)
    options: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The wire form: a plain dict with a protocol version, ready for a serializer."""
        # Spelled out: dataclasses.asdict deep-copies every argument and is the slowest step
        # of a bulk enqueue.
        return {"id": self.id, "task": self.task, "args": self.args, "kwargs": self.kwargs,
                "queue": self.queue, "priority": self.priority, "eta": self.eta,
                "expires": self.expires, "retries": self.retries, "created": self.created,
                "options": self.options, "v": PROTOCOL}

    @classmethod
    def from_dict(cls, data: Any) -> Message:
        """Validate and build a message; raises MalformedMessage naming the bad field."""
        if not isinstance(data, dict):
            raise MalformedMessage(f"message must be an object, got {type(data).__name__}")
        if data.get("v") != PROTOCOL:
            raise MalformedMessage(f"unsupported message protocol {data.get('v')!r}")
        _check(data, "id", str)
        _check(data, "task", str)
        _check(data, "args", list | tuple)
        _check(data, "kwargs", dict)
        _check(data, "queue", str)
        _check(data, "priority", int)
        _check(data, "retries", int)
        _check(data, "options", dict)
        for name in ("eta", "expires", "created"):
            if data.get(name) is not None and not isinstance(data[name], int | float):
                raise MalformedMessage(f"field {name!r} must be a number or null")
        return cls(
            id=data["id"], task=data["task"], args=tuple(data["args"]), kwargs=data["kwargs"],
            queue=data["queue"], priority=data["priority"], eta=data.get("eta"),
            expires=data.get("expires"), retries=data["retries"],
            created=data.get("created") or 0.0, options=data["options"],
        )


def _check(data: dict[str, Any], name: str, kind: Any) -> None:
    if name not in data:
        raise MalformedMessage(f"missing field {name!r}")
    if not isinstance(data[name], kind) or (kind is int and isinstance(data[name], bool)):
        raise MalformedMessage(f"field {name!r} must be {getattr(kind, '__name__', 'list')}")
