"""A task's state as a JSON-safe mapping, for the status endpoints of the web integrations.

``{"id": ..., "state": "SUCCESS", "ready": true, "result": 3, "error": null,
"date_done": "2026-01-01T07:00:00+00:00"}``; a failure carries ``"error": {"type": ...,
"message": ...}`` (and its ``traceback`` only when asked for: it may show code and paths).
An id that was never sent, or whose record expired, is ``UNKNOWN``.
"""

from __future__ import annotations

import base64
import math
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any

from ..outcome import Outcome
from ..states import State

if TYPE_CHECKING:
    from ..app import Conveyor


def task_status(app: Conveyor, task_id: str, *, traceback: bool = False) -> dict[str, Any]:
    """The state, result or error of task ``task_id``, every value JSON-safe."""
    record = app.backend.get(task_id)
    found = None if record is None else Outcome.decode(app.codec, record)
    return describe(task_id, found, traceback=traceback)


async def atask_status(app: Conveyor, task_id: str, *,
                       traceback: bool = False) -> dict[str, Any]:
    """Async form of :func:`task_status`."""
    record = await app.backend.aget(task_id)
    found = None if record is None else Outcome.decode(app.codec, record)
    return describe(task_id, found, traceback=traceback)


def describe(task_id: str, found: Outcome | None, *, traceback: bool) -> dict[str, Any]:
    state = State.UNKNOWN if found is None else found.state
    error: dict[str, Any] | None = None
    if found is not None and found.error is not None:
        error = {"type": found.error.type, "message": found.error.message}
        if traceback:
            error["traceback"] = found.error.traceback
    done = None
    if found is not None and state.final and found.at:
        done = datetime.fromtimestamp(found.at, UTC).isoformat()
    return {"id": task_id, "state": str(state), "ready": state.final,
            "result": json_safe(found.value) if found is not None and error is None else None,
            "error": error, "date_done": done, "task": found.task if found else None}


def json_safe(value: Any, depth: int = 0) -> Any:
    """``value`` with everything JSON cannot carry turned into something it can: bytes as
    base64, dates as ISO strings, sets and tuples as lists, NaN as None, the rest as repr."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if depth > 32:
        return repr(value)
    if isinstance(value, dict):
        return {str(k): json_safe(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [json_safe(v, depth + 1) for v in value]
    if isinstance(value, bytes | bytearray | memoryview):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, datetime | date):
        return value.isoformat()
    return repr(value)
