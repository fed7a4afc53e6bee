"""AsyncResult: a handle on one task's outcome, by id, from any process."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Generic, TypeVar, cast

from .clock import Deadline
from .errors import ResultTimeout, TaskExpired, TaskRevoked
from .outcome import Outcome
from .states import State

if TYPE_CHECKING:
    from .app import Conveyor

R = TypeVar("R")


class AsyncResult(Generic[R]):
    """The outcome of task ``id``. Cheap to create; every property reads the backend.

    ``get`` blocks until the task is final (without polling) and returns its value, or re-raises
    the task's exception with the worker's traceback as its ``__cause__``.
    """

    def __init__(self, task_id: str, app: Conveyor) -> None:
        """``AsyncResult(task_id, app=app)``: any task's outcome, from any process."""
        self.id = task_id
        self.app = app

    def __repr__(self) -> str:
        return f"<AsyncResult {self.id}>"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, AsyncResult) and other.id == self.id

    def __hash__(self) -> int:
        return hash(self.id)

    def outcome(self) -> Outcome | None:
        """The stored outcome, or None when the id is unknown (never sent, expired, forgotten)."""
        record = self.app.backend.get(self.id)
        return None if record is None else Outcome.decode(self.app.codec, record)

    @property
    def status(self) -> State:
        """The current state; UNKNOWN for an id with no record. ``state`` is the same."""
        found = self.outcome()
        return State.UNKNOWN if found is None else found.state

    @property
    def state(self) -> State:
        """The current state (Celery's name; the same as :attr:`status`)."""
        return self.status

    @property
    def info(self) -> Any:
        """As in Celery: the value once it succeeded, the exception once it failed or while it
        waits for a retry, else None."""
        return self.result

    @property
    def date_done(self) -> datetime | None:
        """When the task reached its final state (aware, UTC), or None while it is not final."""
        found = self.outcome()
        if found is None or not found.state.final or not found.at:
            return None
        return datetime.fromtimestamp(found.at, UTC)

    def ready(self) -> bool:
        """True once the task reached a final state."""
        return self.status.final

    def successful(self) -> bool:
        return self.status is State.SUCCESS

    def failed(self) -> bool:
        return self.status is State.FAILURE

    @property
    def result(self) -> Any:
        """The value if it succeeded, the rebuilt exception if it failed (or is waiting for a
        retry), else None."""
        found = self.outcome()
        if found is None:
            return None
        return found.error.rebuild() if found.error is not None else found.value

    @property
    def traceback(self) -> str | None:
        found = self.outcome()
        return None if found is None or found.error is None else found.error.traceback

    def get(self, timeout: float | None = None, propagate: bool = True) -> R:
        """Wait for the final outcome and return the task's value (typed as the task's return).

        Raises ResultTimeout after ``timeout`` seconds; with ``propagate`` re-raises the task's
        error (TaskRevoked / TaskExpired for those states).
        """
        record = self.app.backend.wait(self.id, timeout)
        return self._settle(None if record is None else Outcome.decode(self.app.codec, record),
                            timeout, propagate)

    async def aget(self, timeout: float | None = None, propagate: bool = True) -> R:
        """Async form of :meth:`get`: awaits the outcome without blocking the event loop."""
        record = await self.app.backend.await_final(self.id, timeout)
        return self._settle(None if record is None else Outcome.decode(self.app.codec, record),
                            timeout, propagate)

    def _settle(self, found: Outcome | None, timeout: float | None, propagate: bool) -> R:
        if found is None or not found.state.final:
            state = State.UNKNOWN if found is None else found.state
            raise ResultTimeout(f"task {self.id} not finished after {timeout}s (state {state})")
        if propagate and found.state is State.REVOKED:
            raise TaskRevoked(f"task {self.id} was revoked")
        if propagate and found.state is State.EXPIRED:
            raise TaskExpired(f"task {self.id} expired before it ran")
        if propagate and found.error is not None:
            raise found.error.rebuild()
        return cast(R, found.value if found.error is None else found.error.rebuild())

    def forget(self) -> None:
        """Delete the stored outcome."""
        self.app.backend.forget(self.id)

    def revoke(self, terminate: bool = False) -> bool:
        """Revoke the task, as ``app.control.revoke(id)``: if it has not started it never runs
        anywhere; a task already running finishes (its outcome discarded) unless ``terminate``
        stops it where it runs. Its state becomes REVOKED. False if it was already final."""
        return self.id in self.app.control.revoke(self.id, terminate=terminate)


def collect(results: list[AsyncResult[R]], timeout: float | None = None) -> list[R]:
    """Values of many results, in order, waiting for each in turn."""
    deadline = Deadline(timeout)
    return [result.get(timeout=deadline.left()) for result in results]
