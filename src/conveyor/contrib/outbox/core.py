"""The outbox's rows, the producer side that writes them and the relay that publishes them."""

from __future__ import annotations

import logging
import os
import signal
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from ...brokers import Coordination, Envelope, StoredResult
from ...brokers.base import UNTRACKED_START
from ...errors import ConfigurationError
from ...message import new_id
from ...result import AsyncResult
from ...states import State

if TYPE_CHECKING:
    from ...app import Conveyor
    from ...canvas import Signature

log = logging.getLogger("conveyor.outbox")

#: Test hook: ``before_publish`` or ``after_publish`` makes the relay SIGKILL its own process
#: at that point (read once at import; an unset hook costs one comparison per batch).
CRASH_ENV = "CONVEYOR_TEST_OUTBOX_CRASH"
_CRASH_AT = os.environ.get(CRASH_ENV) or None


def _crash_point(point: str) -> None:
    if _CRASH_AT is not None and point == _CRASH_AT:
        os.kill(os.getpid(), signal.SIGKILL)


@dataclass(frozen=True, slots=True)
class Row:
    """One task waiting in the outbox: its encoded message and what its PENDING record needs."""

    id: str
    task: str
    queue: str
    body: bytes
    content_type: str
    priority: int
    eta: float | None
    created: float

    def envelope(self) -> Envelope:
        return Envelope(self.id, self.queue, self.body, self.content_type, self.priority,
                        self.eta)


class OutboxStore(Protocol):
    """Where the rows live: the application's database."""

    def add(self, rows: Sequence[Row], session: Any) -> None:
        """Write ``rows`` in the caller's transaction (``session``: a SQLAlchemy session or
        connection; a Django database alias or None)."""

    def pending(self, limit: int) -> list[Row]:
        """The oldest rows not yet removed, at most ``limit``."""

    def remove(self, ids: Sequence[str]) -> None:
        """Delete the rows of ``ids`` (they were published)."""


class Outbox:
    """Writes tasks into ``store`` in the application's transaction; see the package doc."""

    def __init__(self, app: Conveyor, store: OutboxStore) -> None:
        self.app = app
        self.store = store
        self._relay: Relay | None = None

    def send(self, signature: Signature[Any], session: Any = None) -> AsyncResult[Any]:
        """Write ``signature``'s call as a row in ``session``'s transaction; its result's id
        is known now and reads UNKNOWN until the relay has published it. Serialization errors
        are raised here, as for ``delay``."""
        return self.send_many([signature], session)[0]

    def send_many(self, signatures: Sequence[Signature[Any]],
                  session: Any = None) -> list[AsyncResult[Any]]:
        """:meth:`send` for several calls, in one write."""
        rows = [self._row(s) for s in signatures]
        self.store.add(rows, session)
        if self._relay is not None:
            self._relay.wake_after_commit(session)
        return [AsyncResult(row.id, self.app) for row in rows]

    def _row(self, signature: Signature[Any]) -> Row:
        app, options = self.app, dict(signature.options)
        if signature.links or signature.errbacks:
            raise ConfigurationError(f"outbox: {signature.task} has callbacks; send"
                                     " workflows from a task instead")
        task = app.tasks.get(signature.task)
        options.setdefault("task_id", new_id())
        message = app.build_message(signature.task, task.options if task else None,
                                    tuple(signature.args), dict(signature.kwargs),
                                    **{k: v for k, v in options.items()
                                       if k in _PUBLISH_OPTIONS})
        envelope = app.envelope(message)
        return Row(message.id, message.task, envelope.queue, envelope.body,
                   envelope.content_type, envelope.priority, envelope.eta, message.created)

    def relay(self, **options: Any) -> Relay:
        """This outbox's relay (made once); a relay running in this process is woken by each
        commit that wrote rows."""
        if self._relay is None:
            self._relay = Relay(self.app, self.store, **options)
        return self._relay


_PUBLISH_OPTIONS = frozenset({"countdown", "eta", "expires", "priority", "queue", "task_id",
                              "time_limit", "soft_time_limit"})


class Relay:
    """Publishes outbox rows: ``run()`` in its own process, ``start()`` as a thread."""

    def __init__(self, app: Conveyor, store: OutboxStore, *, batch: int = 200,
                 interval: float = 1.0, lease: float = 5.0) -> None:
        self.app, self.store = app, store
        self.batch, self.interval, self.lease = batch, interval, lease
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._token = new_id().encode()
        self._leading = False

    def relay_once(self) -> int:
        """Publish one batch; returns how many rows were published (not counting rows found
        already published and only removed). Nothing happens unless this relay leads."""
        if not self._lead():
            return 0
        rows = self.store.pending(self.batch)
        if not rows:
            return 0
        known = self.app.backend.get_many([row.id for row in rows])
        fresh = [row for row, record in zip(rows, known, strict=True) if record is None]
        _crash_point("before_publish")
        if fresh:
            self._publish(fresh)
        _crash_point("after_publish")
        self.store.remove([row.id for row in rows])
        return len(fresh)

    def _publish(self, rows: Sequence[Row]) -> None:
        app = self.app
        envelopes = [row.envelope() for row in rows]
        records = [(row.id, _pending(app, row)) for row in rows]
        latest = max((row.eta or 0.0 for row in rows), default=0.0)
        ttl = app.result_ttl + max(0.0, latest - app.clock.time())
        if app.shared_store:  # the message and its PENDING record in one write
            app.broker.publish_tracked(envelopes, records, ttl)
        else:
            app.broker.publish(envelopes)
            app.backend.store_many(records, ttl)

    def _lead(self) -> bool:
        backend = self.app.backend
        if not isinstance(backend, Coordination):
            return True
        key = f"outbox-relay:{self.app.name}"
        held = backend.put_if_absent(key, self._token, self.lease)
        if held is None or (held == self._token
                            and backend.compare_and_set(key, self._token, self._token,
                                                        self.lease)):
            self._leading = True
            return True
        self._leading = False
        return False

    def run(self, stop: threading.Event | None = None) -> None:
        """Relay until ``stop`` (or :meth:`stop`) is set, waking at once after each commit
        that wrote rows in this process, else every ``interval`` seconds."""
        stop = stop or self._stop
        while not stop.is_set():
            try:
                while self.relay_once() >= self.batch:
                    pass
            except Exception:  # a store outage: log it, keep the rows, try again later
                log.exception("outbox relay: publishing failed; the rows stay for the next try")
            self._wake.wait(self.interval)
            self._wake.clear()
        self._release()

    def start(self) -> Relay:
        """Run the relay in a daemon thread of this process."""
        if self._thread is None or not self._thread.is_alive():
            self._stop.clear()
            self._thread = threading.Thread(target=self.run, name="conveyor-outbox",
                                            daemon=True)
            self._thread.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def wake(self) -> None:
        """Look for rows now."""
        self._wake.set()

    def wake_after_commit(self, session: Any) -> None:
        """Wake once ``session``'s transaction commits (Django: ``on_commit``; SQLAlchemy:
        the session's ``after_commit`` event); at once when neither applies."""
        hook = getattr(self.store, "on_commit", None)
        if hook is None:
            self.wake()
        else:
            hook(session, self.wake)

    def _release(self) -> None:
        backend = self.app.backend
        if self._leading and isinstance(backend, Coordination):
            backend.compare_and_set(f"outbox-relay:{self.app.name}", self._token, None, 0.0)
        self._leading = False


def _pending(app: Conveyor, row: Row) -> StoredResult:
    task = app.tasks.get(row.task)
    own = task.options.track_started if task is not None else None
    tracks = app.conf.track_started if own is None else own
    return StoredResult(b"" if tracks else UNTRACKED_START, State.PENDING, 0, False)
