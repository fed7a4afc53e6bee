"""The task message: the one envelope that crosses the wire between producers and workers."""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from .errors import MalformedMessage

PROTOCOL = 1


#: Random bytes are drawn for this many ids at once: one system call instead of one per id,
#: which was a quarter of the cost of a bulk send.
_BATCH = 256
#: The 17th hex digit of a UUID4 carries the variant: its top two bits become ``10``.
_VARIANT = {digit: "89ab"[int(digit, 16) & 3] for digit in "0123456789abcdef"}


class _Random(threading.local):
    """Each thread's store of random hex digits, 32 per id."""

    digits = ""
    at = 0


_random = _Random()


def new_id() -> str:
    """A fresh task id: a random UUID4 in hex with dashes, like Celery's. Its random bits come
    from ``os.urandom``, drawn for many ids at a time by each thread; a forked child draws
    anew, so it never repeats its parent's ids."""
    local = _random
    at = local.at
    if at >= len(local.digits):
        local.digits, at = os.urandom(16 * _BATCH).hex(), 0
    h = local.digits[at:at + 32]
    local.at = at + 32
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{_VARIANT[h[16]]}{h[17:20]}-{h[20:]}"


def _draw_anew() -> None:
    global _random
    _random = _Random()


os.register_at_fork(after_in_child=_draw_anew)


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
        if not _well_typed(data):
            _validate(data)  # names the first field at fault
        return cls(data["id"], data["task"], tuple(data["args"]), data["kwargs"], data["queue"],
                   data["priority"], data.get("eta"), data.get("expires"), data["retries"],
                   data.get("created") or 0.0, data["options"])


_NUMBER_OR_NONE = (int, float, type(None))


def _well_typed(data: dict[str, Any]) -> bool:
    """Every field present with its exact type: the one check a well-formed message (every
    message this library sends) needs, in a fraction of :func:`_validate`'s time."""
    try:
        return (type(data["id"]) is str and type(data["task"]) is str
                and type(data["args"]) in (list, tuple) and type(data["kwargs"]) is dict
                and type(data["queue"]) is str and type(data["priority"]) is int
                and type(data["retries"]) is int and type(data["options"]) is dict
                and type(data.get("eta")) in _NUMBER_OR_NONE
                and type(data.get("expires")) in _NUMBER_OR_NONE
                and type(data.get("created")) in _NUMBER_OR_NONE)
    except KeyError:
        return False


def _validate(data: dict[str, Any]) -> None:
    """Raise MalformedMessage for the first missing or mistyped field (subclasses of the
    expected types pass)."""
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


def _check(data: dict[str, Any], name: str, kind: Any) -> None:
    if name not in data:
        raise MalformedMessage(f"missing field {name!r}")
    if not isinstance(data[name], kind) or (kind is int and isinstance(data[name], bool)):
        raise MalformedMessage(f"field {name!r} must be {getattr(kind, '__name__', 'list')}")
