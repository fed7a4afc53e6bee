"""GroupResult: the results of a group's members, read together.

Reading is one round trip for all members (``get_many``); ``get()`` waits on one unfinished
member at a time without polling, then reads them all again, so waiting for 10,000 members costs
a few reads, not 10,000. ``save()`` stores the member ids (a Coordination value) so that
``GroupResult.restore(id, app=app)`` finds them from any process; a chord's header is saved
this way when it is sent.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar

import orjson

from ..brokers import StoredResult
from ..clock import Deadline
from ..errors import ResultTimeout
from ..outcome import Outcome
from ..result import AsyncResult
from ..states import State
from .launch import coordination, group_key

if TYPE_CHECKING:
    from ..app import Conveyor

R = TypeVar("R")


class GroupResult(AsyncResult[list[R]]):
    """The results of group ``id``'s members, in order (``results``).

    ``get()`` returns their values in order (re-raising the first failure with
    ``propagate``); ``ready()`` is True once every member is final; ``completed_count()``
    counts the successful ones; ``successful()`` is True when all succeeded, ``failed()`` when
    any failed.
    """

    def __init__(self, group_id: str, results: Sequence[AsyncResult[R]], app: Conveyor) -> None:
        super().__init__(group_id, app)
        self.results: list[AsyncResult[R]] = list(results)

    def __repr__(self) -> str:
        return f"<GroupResult {self.id} ({len(self.results)} members)>"

    def __len__(self) -> int:
        return len(self.results)

    def __iter__(self) -> Iterator[AsyncResult[R]]:
        return iter(self.results)

    def __getitem__(self, index: int) -> AsyncResult[R]:
        return self.results[index]

    @property
    def children(self) -> list[AsyncResult[R]]:
        """Celery's name for :attr:`results`."""
        return self.results

    def outcomes(self) -> list[Outcome | None]:
        """Every member's stored outcome, in one round trip (None where unknown)."""
        records = self.app.backend.get_many([r.id for r in self.results])
        return [None if rec is None else Outcome.decode(self.app.codec, rec) for rec in records]

    def outcome(self) -> Outcome | None:
        """A group has no outcome of its own (see :meth:`outcomes`)."""
        return None

    def states(self) -> list[State]:
        return [State.UNKNOWN if o is None else o.state for o in self.outcomes()]

    @property
    def status(self) -> State:
        """FAILURE once a member failed, SUCCESS once all succeeded, else the least advanced
        member's state."""
        states = self.states()
        for final in (State.FAILURE, State.REVOKED, State.EXPIRED):
            if final in states:
                return final
        if all(s is State.SUCCESS for s in states):
            return State.SUCCESS
        order = list(State)
        return min((s for s in states if s is not State.SUCCESS), key=order.index)

    def ready(self) -> bool:
        return all(s.final for s in self.states())

    def successful(self) -> bool:
        return all(s is State.SUCCESS for s in self.states())

    def failed(self) -> bool:
        return any(s is State.FAILURE for s in self.states())

    def waiting(self) -> bool:
        return not self.ready()

    def completed_count(self) -> int:
        """How many members succeeded."""
        return sum(s is State.SUCCESS for s in self.states())

    @property
    def result(self) -> list[Any]:
        return [r.result for r in self.results]

    @property
    def traceback(self) -> str | None:
        return None

    @property
    def date_done(self) -> datetime | None:
        dates = [r.date_done for r in self.results]
        return None if any(d is None for d in dates) else max(d for d in dates if d)

    def get(self, timeout: float | None = None, propagate: bool = True) -> list[R]:
        """Every member's value, in order, once all are final. Raises ResultTimeout after
        ``timeout`` seconds; with ``propagate`` the first failed member's error (in order)."""
        deadline = Deadline(timeout)
        found: list[Outcome | None] = [None] * len(self.results)
        while True:
            waiting = self._unfinished(found)
            records = self.app.backend.get_many([self.results[i].id for i in waiting])
            if self._note(found, waiting, records):
                return self._values(found, timeout, propagate)
            if deadline.expired:
                raise self._timeout(found, timeout)
            self.app.backend.wait(self._last_unfinished(found), deadline.left())

    async def aget(self, timeout: float | None = None, propagate: bool = True) -> list[R]:
        """Async form of :meth:`get`."""
        deadline = Deadline(timeout)
        found: list[Outcome | None] = [None] * len(self.results)
        while True:
            waiting = self._unfinished(found)
            records = await self.app.backend.aget_many([self.results[i].id for i in waiting])
            if self._note(found, waiting, records):
                return self._values(found, timeout, propagate)
            if deadline.expired:
                raise self._timeout(found, timeout)
            await self.app.backend.await_final(self._last_unfinished(found), deadline.left())

    # Members mostly finish in order, so waiting for the last unfinished one and then reading
    # only those still unfinished takes a few reads for a whole group.
    @staticmethod
    def _unfinished(found: list[Outcome | None]) -> list[int]:
        return [i for i, o in enumerate(found) if o is None or not o.state.final]

    def _note(self, found: list[Outcome | None], waiting: list[int],
              records: list[StoredResult | None]) -> bool:
        """Record what was read; True once every member is final."""
        for index, record in zip(waiting, records, strict=True):
            found[index] = None if record is None else Outcome.decode(self.app.codec, record)
        return not self._unfinished(found)

    def _last_unfinished(self, found: list[Outcome | None]) -> str:
        return self.results[self._unfinished(found)[-1]].id

    def _values(self, found: list[Outcome | None], timeout: float | None,
                propagate: bool) -> list[R]:
        return [self.results[i]._settle(o, timeout, propagate) for i, o in enumerate(found)]

    def _timeout(self, found: list[Outcome | None], timeout: float | None) -> ResultTimeout:
        left = len(self._unfinished(found))
        return ResultTimeout(f"group {self.id}: {left} of {len(self)} members not finished"
                             f" after {timeout}s")

    join = get

    def forget(self) -> None:
        """Delete every member's outcome and the saved membership."""
        for result in self.results:
            result.forget()
        coordination(self.app).delete_value(group_key(self.id))

    def revoke(self, terminate: bool = False) -> bool:
        """Revoke every member (see :meth:`AsyncResult.revoke`); True if any was not final."""
        return bool(self.app.control.revoke([r.id for r in self.results], terminate=terminate))

    def save(self) -> GroupResult[R]:
        """Store the member ids for :meth:`restore` (kept as long as results, ``result_ttl``)."""
        ids = orjson.dumps([r.id for r in self.results])
        coordination(self.app).set_value(group_key(self.id), ids, self.app.result_ttl)
        return self

    @classmethod
    def restore(cls, group_id: str, app: Conveyor) -> GroupResult[Any] | None:
        """The group saved under ``group_id`` (a chord's id works too), or None."""
        stored = coordination(app).get_value(group_key(group_id))
        if stored is None:
            return None
        ids = orjson.loads(stored)
        return cls(group_id, [AsyncResult[Any](i, app) for i in ids], app)
