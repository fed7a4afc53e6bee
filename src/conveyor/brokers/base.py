"""The two interfaces every store implements: :class:`Broker` and :class:`ResultBackend`.

A broker carries opaque :class:`Envelope` bodies between producers and consumers. Consumption is
an async stream of :class:`Delivery` objects, each held under a lease: the consumer renews the
leases of what it holds, a consumer that dies (SIGKILL, OOM, power loss) stops renewing and its
deliveries go to another consumer once the lease runs out, and a consumer whose lease ran out
(a zombie) can no longer settle the delivery: its ``ack`` raises :class:`LeaseLost`.

``Delivery.attempt`` grows by at least one every time the message is handed out, redeliveries and
retries alike. The result backend uses it as a fencing number: a write from an older attempt, or
any write over a final outcome, is refused, so a task id ends with exactly one committed outcome.
``Delivery.deliveries`` counts hand-outs since the last publish, retry or replay: the deliveries
that never settled are what the delivery limit counts.

Most stores are pull stores and subclass :class:`PullBroker`, which implements the consumer loop,
prefetch bound and lease renewal once on top of a handful of primitives.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import os
import signal
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..clock import SYSTEM, Clock
from ..errors import BrokerError, ConfigurationError, LeaseLost
from ..events import Event, Retention

log = logging.getLogger("conveyor.broker")

#: Set in tests to make a consumer's process SIGKILL itself right after a claim, before any
#: in-flight bookkeeping: ``1`` at the first claim that got messages, ``N`` at the N-th. Read
#: once, when this module is imported: unset, the check is one false test per claim.
CRASH_AFTER_CLAIM_ENV = "CONVEYOR_TEST_CRASH_AFTER_CLAIM"


def _crash_countdown() -> int:
    value = os.environ.get(CRASH_AFTER_CLAIM_ENV, "")
    return int(value) if value.isdigit() else int(bool(value))


_crash_after_claims = _crash_countdown()


def crash_point() -> None:
    """The test hook of :data:`CRASH_AFTER_CLAIM_ENV`: consumers call it (when the hook is set)
    after the store handed out messages and before they record them as held. Unset, it returns
    at its first test."""
    global _crash_after_claims
    if not _crash_after_claims:
        return
    _crash_after_claims -= 1
    if _crash_after_claims == 0:
        os.kill(os.getpid(), signal.SIGKILL)


@dataclass(frozen=True, slots=True)
class Envelope:
    """What a broker stores: an opaque body and the fields it orders and routes by.

    ``priority`` is 0..9, 9 first; FIFO within one priority. ``eta`` (epoch seconds) hides the
    message until then.
    """

    id: str
    queue: str
    body: bytes
    content_type: str = "application/json"
    priority: int = 0
    eta: float | None = None


@dataclass(frozen=True, slots=True)
class Claim:
    """A message a pull store handed to one consumer: the envelope, its attempt, lease token
    and how many times it was handed out since it was last published, retried or replayed."""

    envelope: Envelope
    attempt: int
    token: str
    deliveries: int = 1
    record: str | None = None  # see Delivery.record


#: The data of a PENDING record whose task keeps no STARTED state (``track_started`` off): a
#: broker that records starts while handing messages out leaves such a record alone.
UNTRACKED_START = b"-"


@dataclass(frozen=True, slots=True)
class Settle:
    """One settle of a claim, as a value, so a store can run several (and the next claim) in
    one round trip or transaction. ``kind`` is ack, retry, dead or release."""

    kind: str
    claim: Claim
    result: ResultWrite | None = None
    delay: float = 0.0
    body: bytes | None = None
    reason: str = ""
    keep_count: bool = False  # a retry that keeps the earlier hand-outs counted (a deferral)


@dataclass(slots=True)
class ClaimBatch:
    """What :meth:`PullBroker._claim_batch` did: the claims, when more may be due, and for
    each settle it ran None (done) or the error it met (LeaseLost)."""

    claims: list[Claim]
    next_at: float | None
    settled: list[BaseException | None]


@dataclass(frozen=True, slots=True)
class ResultWrite:
    """An outcome to store together with a settle (see :class:`Delivery`)."""

    task_id: str
    record: StoredResult
    ttl: float


@dataclass(frozen=True, slots=True)
class QueueStats:
    """Counts for one queue: ready now, held by consumers, waiting for their ETA, dead-lettered."""

    queue: str
    ready: int
    in_flight: int
    delayed: int
    dead: int


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A dead-lettered message with why it was given up and when (epoch seconds)."""

    envelope: Envelope
    reason: str
    failed_at: float


class Delivery(ABC):
    """A message held by one consumer. Settle it exactly once with one of the four methods.

    Every settle raises :class:`LeaseLost` when the lease already passed to another consumer.
    A second settle of the same delivery is a no-op.

    ``ack``, ``retry`` and ``dead_letter`` take an optional ``result`` to store under the
    result backend's fencing rule. Only pass it when the broker is also the app's result backend:
    a store that can, writes it in the same atomic step as the settle (fenced by the lease too,
    and one commit instead of two); others store it first, then settle.
    """

    envelope: Envelope
    attempt: int
    #: Times this message was handed out since it was last published, retried or replayed,
    #: this delivery included; a graceful give-back does not count. Deliveries that never
    #: settled (the consumer died) are what the delivery limit counts.
    deliveries: int
    #: The task's result record as the broker left it when handing the message out, for a
    #: consumer started with ``record_started``: "STARTED" (the broker recorded the start, in
    #: the same step as the claim), a final state (the task already ended: skip it), "" (no
    #: record: nothing to track), or another state it left alone. None: the broker did not
    #: look, and the worker records the start itself.
    record: str | None = None

    @abstractmethod
    async def ack(self, result: ResultWrite | None = None) -> None:
        """Done: remove the message for good."""

    @abstractmethod
    async def retry(self, delay: float, body: bytes | None = None,
                    result: ResultWrite | None = None, *, keep_count: bool = False) -> None:
        """Atomically replace the body (if given) and hide the message for ``delay`` seconds.
        Its hand-out count (``deliveries``) starts afresh, except with ``keep_count`` (a
        deferral: the task did not run): then, as for a give-back, this hand-out is taken off
        and the earlier ones stay counted, so a deferral never hides a crash from the
        delivery limit."""

    @abstractmethod
    async def dead_letter(self, reason: str, result: ResultWrite | None = None) -> None:
        """Move the message to its queue's dead-letter list with ``reason``."""

    @abstractmethod
    async def release(self) -> None:
        """Give the message back at once, e.g. on graceful shutdown."""

    @property
    @abstractmethod
    def lost(self) -> bool:
        """True once a renewal found the lease gone to another consumer."""

    @abstractmethod
    def abandon(self) -> None:
        """Stop renewing without settling (the store is unreachable): the lease runs out and the
        message goes to another consumer. Frees this delivery's prefetch slot."""


class Consumer(ABC):
    """An async iterator of deliveries that never holds more than ``prefetch`` unsettled ones."""

    def __aiter__(self) -> Consumer:
        return self

    @abstractmethod
    async def __anext__(self) -> Delivery: ...

    @abstractmethod
    async def close(self) -> None:
        """Stop consuming: a blocked ``__anext__`` ends promptly and unstarted deliveries are
        given back. Deliveries already handed out stay with their holder to settle."""

    def resize(self, prefetch: int) -> None:
        """Hold at most ``prefetch`` deliveries from now on (consumers that cannot change it
        keep theirs)."""
        return None

    def keeper(self) -> Callable[[], None] | None:
        """A function that keeps what this consumer holds alive from another thread, without
        the event loop (for a task that blocks the loop, see :mod:`conveyor.worker.inline`);
        None when only the loop can."""
        return None


class Broker(ABC):
    """The core every broker meets: publish, consume deliveries under a prefetch bound, settle
    them (ack, retry later, dead-letter, give back) and close. ``url`` never shows a password.

    What a broker may offer beyond that is declared by also deriving from a capability class:
    :class:`QueueAdmin` (statistics, listing, purge) and :class:`DeadLetterAdmin` (browse,
    replay, purge dead letters). Pull stores with leases derive from :class:`PullBroker`; a
    push broker (AMQP) implements the core without imitating a lease table.
    """

    url: str

    def startup_warnings(self, time_limits: Mapping[str, float | None]) -> list[str]:
        """What a worker should warn about before consuming, given each task's time limit in
        seconds (RabbitMQ: limits longer than its consumer timeout); none by default."""
        return []

    def claims_ids(self, queue: str) -> bool:
        """True when workers must claim each task id of ``queue`` in the result backend
        before running it (:mod:`conveyor.middleware.id_claims`): the broker stores the same
        id published twice as two messages. False by default: the store keeps one message
        per id."""
        return False

    @abstractmethod
    def publish(self, envelopes: Sequence[Envelope]) -> None:
        """Store all envelopes in one round trip or transaction; raise BrokerError on failure."""

    @abstractmethod
    async def apublish(self, envelopes: Sequence[Envelope]) -> None:
        """The async form of :meth:`publish`."""

    def publish_tracked(self, envelopes: Sequence[Envelope],
                        records: Sequence[tuple[str, StoredResult]], ttl: float) -> None:
        """Publish and store ``records`` (this broker must also be the result backend).

        Stores that can do both in one transaction or round trip override this.
        """
        self.publish(envelopes)
        _as_backend(self).store_many(records, ttl)

    async def apublish_tracked(self, envelopes: Sequence[Envelope],
                               records: Sequence[tuple[str, StoredResult]], ttl: float) -> None:
        """Async form of :meth:`publish_tracked`."""
        await self.apublish(envelopes)
        await _as_backend(self).astore_many(records, ttl)

    @abstractmethod
    def consume(self, queues: Sequence[str], *, prefetch: int, lease: float,
                record_started: bool = False) -> Consumer:
        """Start consuming ``queues`` (earlier queues first within the same priority).

        ``lease`` is how long a silent consumer keeps its deliveries, for brokers with leases;
        others hand deliveries back when the consumer's connection ends. With
        ``record_started`` a broker that is also the result backend may record each task's
        STARTED state in the same step as handing it out (see :attr:`Delivery.record`); others
        ignore it."""

    @abstractmethod
    def close(self) -> None:
        """Release connections and files."""

    async def aclose(self) -> None:
        """Async form of :meth:`close`."""
        self.close()


class QueueAdmin(ABC):
    """Capability: queue statistics, listing and purge (``conveyor inspect``, ``purge``)."""

    #: False where :meth:`stats` is a snapshot that can miss a message for a moment (one on
    #: its way to a consumer): "nothing left" is then only believed when seen twice.
    exact_counts: bool = True

    @abstractmethod
    def stats(self, queue: str) -> QueueStats:
        """Depth, in-flight, delayed and dead-letter counts of ``queue``."""

    @abstractmethod
    def queues(self) -> list[str]:
        """Names of queues that hold messages, in-flight or dead letters."""

    @abstractmethod
    def purge(self, queue: str) -> int:
        """Remove the ready and delayed messages of ``queue``; returns how many."""

    def scheduled(self, queue: str, limit: int = 100) -> list[Envelope]:
        """Messages of ``queue`` waiting for their ETA (countdowns, retries, tasks waiting for a
        rate limit), earliest first, each with its ``eta`` (``conveyor inspect scheduled``).
        Optional: a store that cannot list them raises ConfigurationError."""
        raise ConfigurationError(f"the broker at {getattr(self, 'url', '?')} cannot list"
                                 " scheduled messages")


class DeadLetterAdmin(ABC):
    """Capability: browsing, replaying and purging dead letters (``conveyor dlq``)."""

    @abstractmethod
    def dead_letters(self, queue: str | None = None, limit: int = 100) -> list[DeadLetter]:
        """Dead letters, oldest first, of one queue or all."""

    @abstractmethod
    def replay_dead(self, ids: Sequence[str] | None = None, queue: str | None = None) -> int:
        """Move dead letters (these ids, or all of ``queue``, or all) back to their queue once."""

    @abstractmethod
    def purge_dead(self, queue: str | None = None) -> int:
        """Delete dead letters of one queue or all; returns how many."""


def queue_admin(broker: Broker) -> QueueAdmin:
    """``broker`` as a :class:`QueueAdmin`, or ConfigurationError naming what it lacks."""
    if isinstance(broker, QueueAdmin):
        return broker
    raise ConfigurationError(f"the broker at {broker.url} offers no queue statistics or purge")


def dead_letter_admin(broker: Broker) -> DeadLetterAdmin:
    """``broker`` as a :class:`DeadLetterAdmin`, or ConfigurationError naming what it lacks."""
    if isinstance(broker, DeadLetterAdmin):
        return broker
    raise ConfigurationError(f"the broker at {broker.url} offers no dead-letter browsing")


@dataclass(frozen=True, slots=True)
class StoredResult:
    """A result record: serialized outcome, its state, and the fencing attempt that wrote it."""

    data: bytes
    state: str
    attempt: int
    final: bool


class ResultBackend(ABC):
    """Stores task outcomes with a TTL. The fencing rule of :meth:`store` is the contract.

    A write is accepted when there is no record, or when the record is not final and its attempt
    is not greater than the writer's. So: a final outcome is never overwritten, and a zombie's late
    write (smaller attempt) is refused once the current holder recorded its start.
    """

    url: str

    @abstractmethod
    def store(self, task_id: str, record: StoredResult, ttl: float) -> bool:
        """Write under the fencing rule; True if written, False if refused."""

    @abstractmethod
    async def astore(self, task_id: str, record: StoredResult, ttl: float) -> bool:
        """Async form of :meth:`store`."""

    def store_many(self, records: Sequence[tuple[str, StoredResult]], ttl: float) -> None:
        """Write many records under the fencing rule; stores override it with one round trip."""
        for task_id, record in records:
            self.store(task_id, record, ttl)

    async def astore_many(self, records: Sequence[tuple[str, StoredResult]], ttl: float) -> None:
        """Async form of :meth:`store_many`."""
        for task_id, record in records:
            await self.astore(task_id, record, ttl)

    @abstractmethod
    def get_many(self, task_ids: Sequence[str]) -> list[StoredResult | None]:
        """Records of many tasks in one round trip; None where unknown or expired."""

    @abstractmethod
    async def aget_many(self, task_ids: Sequence[str]) -> list[StoredResult | None]:
        """Async form of :meth:`get_many`."""

    @abstractmethod
    def wait(self, task_id: str, timeout: float | None) -> StoredResult | None:
        """Block until the record is final or ``timeout`` passes, without busy polling.
        Returns the latest record (final or not) or None if there is none."""

    @abstractmethod
    async def await_final(self, task_id: str, timeout: float | None) -> StoredResult | None:
        """Async form of :meth:`wait`."""

    @abstractmethod
    def forget(self, task_id: str) -> None:
        """Delete the record."""

    @abstractmethod
    async def count_member(self, key: str, member: str, ttl: float) -> int:
        """Add ``member`` to the set ``key`` and return the set's size: counts each member once,
        even when the same member is added twice after a redelivery (chords use it)."""

    @abstractmethod
    def close(self) -> None:
        """Release connections and files."""

    async def aclose(self) -> None:
        """Async form of :meth:`close`."""
        self.close()

    def get(self, task_id: str) -> StoredResult | None:
        """The record of one task, or None."""
        return self.get_many([task_id])[0]

    async def aget(self, task_id: str) -> StoredResult | None:
        """Async form of :meth:`get`."""
        return (await self.aget_many([task_id]))[0]


class EventLog(ABC):
    """Capability of a store: a bounded, append-only log of :class:`conveyor.events.Event`,
    and the latest heartbeat of each worker process.

    Ids are strings that order the events within the store; reading resumes after an id.
    ``None`` as ``after`` means "only what comes next".
    """

    @abstractmethod
    async def append_events(self, events: Sequence[Event], retention: Retention) -> None:
        """Append in one round trip; worker events also update the latest-heartbeat table
        (``worker-offline`` removes the process from it). Old events beyond ``retention`` go."""

    @abstractmethod
    def append_events_sync(self, events: Sequence[Event], retention: Retention) -> None:
        """Blocking form of :meth:`append_events`, for producers."""

    @abstractmethod
    async def read_events(self, after: str | None, limit: int, wait: float) -> list[Event]:
        """Up to ``limit`` events after ``after``, oldest first; when there are none, wait up
        to ``wait`` seconds for some (without busy polling)."""

    @abstractmethod
    async def last_event_id(self) -> str | None:
        """The id of the newest event kept, or None when there is none."""

    @abstractmethod
    async def heartbeats(self) -> list[Event]:
        """The latest ``worker-online``/``worker-heartbeat`` event of every process that has
        not gone offline (a killed one stays until readers judge it by its age)."""


class Coordination(ABC):
    """Capability of a result backend: small values under keys, each with a TTL, changed
    atomically. What must hold across every worker and producer builds on it: unique tasks,
    one enqueue per schedule tick, leader leases, revocations.

    A key whose TTL passed is absent. ``ttl`` is in seconds (> 0).
    """

    @abstractmethod
    def put_if_absent(self, key: str, value: bytes, ttl: float) -> bytes | None:
        """Set ``key`` unless it holds a value: None if it was set, else the value it holds."""

    @abstractmethod
    async def aput_if_absent(self, key: str, value: bytes, ttl: float) -> bytes | None:
        """Async form of :meth:`put_if_absent`."""

    @abstractmethod
    def get_value(self, key: str) -> bytes | None:
        """The value of ``key``, or None."""

    @abstractmethod
    async def aget_value(self, key: str) -> bytes | None:
        """Async form of :meth:`get_value`."""

    @abstractmethod
    def value_ttl(self, key: str) -> float | None:
        """Seconds until ``key`` expires, or None if it holds no value: a waiter for a lease
        looks again when it would run out rather than on a fixed beat."""

    @abstractmethod
    async def avalue_ttl(self, key: str) -> float | None:
        """Async form of :meth:`value_ttl`."""

    @abstractmethod
    def compare_and_set(self, key: str, expected: bytes | None, value: bytes | None,
                        ttl: float) -> bool:
        """If ``key`` holds ``expected`` (None: absent), make it hold ``value`` for ``ttl``
        (None: delete it). True if it did: a lease holder renews or releases this way."""

    @abstractmethod
    async def acompare_and_set(self, key: str, expected: bytes | None, value: bytes | None,
                               ttl: float) -> bool:
        """Async form of :meth:`compare_and_set`."""

    @abstractmethod
    def set_value(self, key: str, value: bytes, ttl: float) -> None:
        """Make ``key`` hold ``value`` for ``ttl``, whatever it held."""

    @abstractmethod
    async def aset_value(self, key: str, value: bytes, ttl: float) -> None:
        """Async form of :meth:`set_value`."""

    @abstractmethod
    def delete_value(self, key: str) -> None:
        """Remove ``key`` (a no-op when absent)."""

    @abstractmethod
    async def adelete_value(self, key: str) -> None:
        """Async form of :meth:`delete_value`."""


# -- capabilities of app.control and the control middleware (see docs/control.md) -------------


class ControlLog(ABC):
    """Capability of a result backend: the app's bounded stream of control commands and their
    replies (:mod:`conveyor.control`), stored as :class:`conveyor.events.Event` entries.

    Every worker process follows it from the moment it starts; a command sent while no worker
    runs reaches none (what must outlive that, such as revocations, is kept elsewhere too).
    Ids order the entries; reading resumes after an id, ``None`` meaning "what comes next".
    """

    @abstractmethod
    def append_control(self, entries: Sequence[Event], retention: Retention) -> list[str]:
        """Append in one round trip; returns the ids given. Old entries beyond ``retention`` go."""

    @abstractmethod
    async def aappend_control(self, entries: Sequence[Event],
                              retention: Retention) -> list[str]:
        """Async form of :meth:`append_control`."""

    @abstractmethod
    async def aread_control(self, after: str | None, limit: int, wait: float) -> list[Event]:
        """Up to ``limit`` entries after ``after``, oldest first; when there are none, wait up
        to ``wait`` seconds for some, without busy polling."""

    @abstractmethod
    async def alast_control_id(self) -> str | None:
        """The id of the newest entry kept, or None."""


class Revocations(ABC):
    """Capability of a result backend: the set of revoked task ids, each kept for a TTL, so
    a revocation reaches workers started later and survives their restarts."""

    @abstractmethod
    def revoke_ids(self, ids: Sequence[str], ttl: float) -> None:
        """Add ``ids`` (kept ``ttl`` seconds from now) in one round trip."""

    @abstractmethod
    async def arevoke_ids(self, ids: Sequence[str], ttl: float) -> None:
        """Async form of :meth:`revoke_ids`."""

    @abstractmethod
    async def arevoked_ids(self) -> list[str]:
        """Every revoked id whose TTL has not passed (a worker loads them when it starts)."""


@dataclass(frozen=True, slots=True)
class RateWindow:
    """At most ``limit`` starts in any ``per`` seconds, counted under ``key``."""

    key: str
    limit: int
    per: float


class RateLimiter(ABC):
    """Capability of a result backend: sliding-window rate limits shared by every worker.

    :meth:`acquire_rate` is one atomic step (judged by the store's clock): either ``member``
    starts now in every window (it returns 0.0 and the start is counted), or it returns the
    seconds until ``member``'s turn. A window never counts more than ``limit`` starts within
    any ``per`` seconds. Turns are handed out first come, first served and recorded, so waiters
    come back one by one instead of all at once; a newcomer does not take a start a waiter's
    turn counts on. A member back at its turn starts if the window has room (else it gets the
    next free moment).
    """

    @abstractmethod
    async def acquire_rate(self, windows: Sequence[RateWindow], member: str) -> float:
        """Start ``member`` in every window (0.0), or the seconds until its turn (> 0)."""


@dataclass(frozen=True, slots=True)
class Waiter:
    """A message waiting for a concurrency slot: its queue and id (to wake it early)."""

    queue: str
    id: str


class ConcurrencySlots(ABC):
    """Capability of a result backend: leased counting semaphores, one per key.

    At most ``limit`` holders hold a key's slots at once. A holder's slot expires ``lease``
    seconds after it was taken or last renewed, so a dead holder frees it. Those refused wait in
    line, first come, first served: while anyone waits, a newcomer does not overtake them.
    Operations that free slots return the waiters to wake (each once, marked woken) so their
    messages can be made due at once; a waiter's place lasts ``patience`` seconds from when it
    last asked (or was woken). Each operation is one atomic step.
    """

    @abstractmethod
    async def acquire_slot(self, key: str, limit: int, holder: str, lease: float,
                           waiter: Waiter, patience: float) -> tuple[bool, list[Waiter]]:
        """Take a slot (True), or join (or keep) a place in line (False); also the waiters to
        wake. Asking again while holding renews the slot."""

    @abstractmethod
    async def release_slot(self, key: str, limit: int, holder: str) -> list[Waiter]:
        """Give up the slot or the place in line of ``holder``; the waiters to wake."""

    @abstractmethod
    async def renew_slots(self, held: Sequence[tuple[str, str]], lease: float) -> set[str]:
        """Extend the slots of ``(key, holder)`` pairs; the holders whose slot was lost."""

    @abstractmethod
    async def slot_woken(self, key: str, holder: str) -> bool:
        """True if ``holder`` waits in line and was woken (a slot is kept for it)."""


class DelayedWake(ABC):
    """Capability of a broker: make delayed messages due now (a waiter whose slot came free)."""

    @abstractmethod
    async def wake_delayed(self, queue: str, ids: Sequence[str]) -> int:
        """Make the delayed messages ``ids`` of ``queue`` due at once, at the place in the queue
        their delay gave them; ids not delayed (held, gone) are left alone. Returns how many."""


class PullBroker(Broker):
    """A broker whose consumers pull. Subclasses provide the primitives below; all are atomic.

    ``clock`` is what the consumer loop measures waits with; stores set their own.
    """

    clock: Clock = SYSTEM

    @abstractmethod
    async def _claim(
        self, queues: Sequence[str], limit: int, lease: float
    ) -> tuple[list[Claim], float | None]:
        """Claim up to ``limit`` due messages (priority, then queue order, then FIFO).

        Also returns the earliest epoch time at which more may become claimable (a delayed
        message's ETA or another consumer's lease expiry), or None if nothing is pending.
        """

    @abstractmethod
    async def _wait(self, queues: Sequence[str], timeout: float) -> None:
        """Return when a message may have arrived on ``queues``, or after ``timeout`` seconds."""

    @abstractmethod
    async def _settle_ack(self, claim: Claim) -> None:
        """Delete the message if ``claim.token`` still holds its lease, else raise LeaseLost."""

    @abstractmethod
    async def _settle_retry(self, claim: Claim, delay: float, body: bytes | None,
                            keep_count: bool = False) -> None:
        """Fenced: keep the message, replace its body, make it due after ``delay``; its
        hand-out count afresh, or one less with ``keep_count`` (see ``Delivery.retry``)."""

    @abstractmethod
    async def _settle_dead(self, claim: Claim, reason: str) -> None:
        """Fenced: move the message to the dead-letter list of its queue."""

    @abstractmethod
    async def _settle_release(self, claim: Claim) -> None:
        """Fenced: make the message due again now."""

    @abstractmethod
    async def _renew(self, claims: Sequence[Claim], lease: float) -> set[str]:
        """Extend the leases of ``claims``; return the tokens whose lease was already lost."""

    @abstractmethod
    def _renew_blocking(self, claims: Sequence[Claim], lease: float) -> set[str]:
        """:meth:`_renew` by the store's blocking path: callable from any thread, it never
        touches an event loop."""

    def consume(self, queues: Sequence[str], *, prefetch: int, lease: float,
                record_started: bool = False) -> Consumer:
        return PullConsumer(self, list(queues), prefetch=prefetch, lease=lease,
                            record_started=record_started)

    async def _settle_one(self, settle: Settle) -> None:
        """Run one settle through the primitives below (LeaseLost when fenced out)."""
        claim, result = settle.claim, settle.result
        if settle.kind == "ack":
            await (self._settle_ack(claim) if result is None
                   else self._settle_ack_storing(claim, result))
        elif settle.kind == "retry":
            await (self._settle_retry(claim, settle.delay, settle.body, settle.keep_count)
                   if result is None else self._settle_retry_storing(
                       claim, settle.delay, settle.body, result, settle.keep_count))
        elif settle.kind == "dead":
            await (self._settle_dead(claim, settle.reason) if result is None
                   else self._settle_dead_storing(claim, settle.reason, result))
        else:
            await self._settle_release(claim)

    async def _claim_batch(self, queues: Sequence[str], limit: int, lease: float, *,
                           settles: Sequence[Settle] = (),
                           record_started: bool = False) -> ClaimBatch:
        """Run ``settles``, then claim up to ``limit``: the consumer's whole step after a task.

        Stores override it to do all of it in one round trip or transaction, recording STARTED
        for the claimed tasks too when ``record_started`` (this default does not look:
        ``Claim.record`` stays None)."""
        settled: list[BaseException | None] = []
        for settle in settles:
            try:
                await self._settle_one(settle)
                settled.append(None)
            except LeaseLost as exc:
                settled.append(exc)
        claims, next_at = await self._claim(queues, limit, lease) if limit else ([], None)
        return ClaimBatch(claims, next_at, settled)

    # Settles that carry a result. These defaults store first, then settle (two steps, the
    # result fenced by attempt only); stores that can, override them with one atomic step.
    async def _settle_ack_storing(self, claim: Claim, result: ResultWrite) -> None:
        await _store(self, result)
        await self._settle_ack(claim)

    async def _settle_retry_storing(self, claim: Claim, delay: float, body: bytes | None,
                                    result: ResultWrite, keep_count: bool = False) -> None:
        await _store(self, result)
        await self._settle_retry(claim, delay, body, keep_count)

    async def _settle_dead_storing(self, claim: Claim, reason: str,
                                   result: ResultWrite) -> None:
        await _store(self, result)
        await self._settle_dead(claim, reason)


def _as_backend(store: object) -> ResultBackend:
    if not isinstance(store, ResultBackend):
        raise TypeError(f"{store!r} is not a result backend; store results separately")
    return store


async def _store(store: object, result: ResultWrite) -> None:
    await _as_backend(store).astore(result.task_id, result.record, result.ttl)


class LeasedDelivery(Delivery):
    """A delivery from a :class:`PullBroker`; settles through the broker's fenced primitives,
    handed to its consumer, which may run them together with its next claim."""

    def __init__(self, consumer: PullConsumer, claim: Claim) -> None:
        self.envelope = claim.envelope
        self.attempt = claim.attempt
        self.deliveries = claim.deliveries
        self.record = claim.record
        self.claim = claim
        self._consumer = consumer
        self._settled = False
        self._lost = False

    @property
    def lost(self) -> bool:
        return self._lost

    async def ack(self, result: ResultWrite | None = None) -> None:
        await self._settle(Settle("ack", self.claim, result))

    async def retry(self, delay: float, body: bytes | None = None,
                    result: ResultWrite | None = None, *, keep_count: bool = False) -> None:
        await self._settle(Settle("retry", self.claim, result, delay=delay, body=body,
                                  keep_count=keep_count))

    async def dead_letter(self, reason: str, result: ResultWrite | None = None) -> None:
        await self._settle(Settle("dead", self.claim, result, reason=reason))

    async def release(self) -> None:
        await self._settle(Settle("release", self.claim))

    async def _settle(self, settle: Settle) -> None:
        if self._settled:
            return
        self._settled = True
        await self._consumer.submit(settle)

    def mark_lost(self) -> None:
        self._lost = True

    def abandon(self) -> None:
        self._settled = True
        self._consumer._forget(self.claim.token)


class PullConsumer(Consumer):
    """The consumer loop shared by pull stores: claim while under the prefetch bound, wait for a
    wake-up or the next due time otherwise, and renew held leases every third of the lease.

    A settle submitted while the loop waits for a free prefetch slot rides with the claim that
    the freed slot starts: one round trip (one transaction) per task instead of two. Other
    settles go out at once on their own.
    """

    #: Longest an idle consumer sleeps before looking again although nothing woke it: a
    #: safety net (new messages, ETAs and lease expiries wake or time it anyway).
    max_idle = 5.0
    #: Longest a settle waits for the next claim to carry it.
    RIDE_FOR = 0.02

    def __init__(self, broker: PullBroker, queues: list[str], *, prefetch: int, lease: float,
                 record_started: bool = False, defer_settles: bool = False):
        if prefetch < 1:
            raise ValueError("prefetch must be at least 1")
        self.broker = broker
        self.queues = queues
        self.prefetch = prefetch
        self.lease = lease
        self.record_started = record_started
        self.defer_settles = defer_settles
        self._held: dict[str, LeasedDelivery] = {}
        self._ready: collections.deque[LeasedDelivery] = collections.deque()
        self._riding: list[tuple[Settle, asyncio.Future[None]]] = []
        self._waiting_slot = False
        self._filling = False  # a claim is on its way: its deliveries are next to start
        self._slot_waiter: asyncio.Future[None] | None = None
        self._closed = asyncio.Event()
        self._renewer: asyncio.Task[None] | None = None
        self._background: set[asyncio.Future[None]] = set()

    async def __anext__(self) -> Delivery:
        while not self._closed.is_set():
            if self._ready:
                return self._ready.popleft()
            free = self.prefetch - len(self._held)
            if free <= 0:
                await self._wait_for_slot()
                continue
            await self._fill(free)
        await self._flush_riding()
        raise StopAsyncIteration

    async def _wait_for_slot(self) -> None:
        """Sleep until a held delivery is settled (or abandoned) or the consumer closes: on a
        plain future, as this runs once per task."""
        self._slot_waiter = asyncio.get_running_loop().create_future()
        self._waiting_slot = True
        try:
            await self._slot_waiter
        finally:
            self._waiting_slot = False
            self._slot_waiter = None

    def submit(self, settle: Settle) -> Awaitable[None]:
        """Settle a held delivery, resolving once the store has done it.

        It rides with the next claim when one is near: the loop waits for a slot (this settle
        frees it), or, for a consumer made with ``defer_settles``, prefetched deliveries are
        still to start or a claim of more is on its way (the next claim comes when those are
        done; ``RIDE_FOR`` seconds at most).
        Otherwise it goes out now, taking any settles that were waiting with it: a group
        commit either way. Only a caller that does not wait for its settle before asking for
        the next delivery (a worker) should defer settles.
        """
        self._forget(settle.claim.token)
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._riding.append((settle, future))
        near = self._waiting_slot or (self.defer_settles and (bool(self._ready)
                                                              or self._filling))
        if self._closed.is_set() or not near:
            self._spawn(self._flush_riding())
        elif len(self._riding) == 1:
            asyncio.get_running_loop().call_later(self.RIDE_FOR, self._flush_stale, settle)
        return future

    def resize(self, prefetch: int) -> None:
        """A new prefetch bound; prefetched deliveries beyond it go back at once."""
        self.prefetch = max(1, prefetch)
        while len(self._held) > self.prefetch and self._ready:
            self._spawn(self._ready.pop().release())

    def _flush_stale(self, first: Settle) -> None:
        if self._riding and self._riding[0][0] is first:
            self._spawn(self._flush_riding())

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _fill(self, free: int) -> None:
        self._start_renewer()
        riding, self._riding = self._riding, []
        self._filling = True
        try:
            batch = await self._claim_with(riding, free)
        finally:
            self._filling = False
        if batch.claims:
            crash_point()
        for claim in batch.claims:
            delivery = LeasedDelivery(self, claim)
            self._held[claim.token] = delivery
            self._ready.append(delivery)
        if not batch.claims and not riding:
            now = self.broker.clock.time()
            timeout = self.max_idle if batch.next_at is None else batch.next_at - now
            timeout = min(max(timeout, 0.0), self.max_idle)
            await self._until(self.broker._wait(self.queues, timeout), None)

    async def _claim_with(self, riding: list[tuple[Settle, asyncio.Future[None]]],
                          free: int) -> ClaimBatch:
        """One claim carrying the riding settles; their waiters learn how each went. Shielded:
        if the consumer is cancelled meanwhile, the step still completes and what it claimed
        is given back."""
        step = self.broker._claim_batch(self.queues, free, self.lease,
                                        settles=[s for s, _ in riding],
                                        record_started=self.record_started)
        job: asyncio.Future[ClaimBatch] = asyncio.ensure_future(step)
        try:
            batch = await asyncio.shield(job)
        except asyncio.CancelledError:
            job.add_done_callback(lambda done: self._orphaned(done, riding))
            raise
        except BaseException as exc:
            _resolve(riding, [exc] * len(riding))
            raise
        _resolve(riding, batch.settled)
        return batch

    def _orphaned(self, job: asyncio.Future[ClaimBatch],
                  riding: list[tuple[Settle, asyncio.Future[None]]]) -> None:
        if job.cancelled() or job.exception() is not None:
            _resolve(riding, [job.exception() or asyncio.CancelledError()] * len(riding))
            return
        batch = job.result()
        _resolve(riding, batch.settled)
        for claim in batch.claims:  # nobody will see these: give them back
            self._spawn(self.broker._settle_one(Settle("release", claim)))

    async def _flush_riding(self) -> None:
        """Send the waiting settles now, together, without a claim."""
        riding, self._riding = self._riding, []
        if not riding:
            return
        try:
            batch = await self.broker._claim_batch(self.queues, 0, self.lease,
                                                   settles=[s for s, _ in riding])
        except BaseException as exc:
            _resolve(riding, [exc] * len(riding))
            if not isinstance(exc, Exception):
                raise
        else:
            _resolve(riding, batch.settled)

    async def _until(self, awaitable: Awaitable[Any], timeout: float | None) -> None:
        """Await ``awaitable`` but return as soon as the consumer is closed."""
        waiter = asyncio.ensure_future(awaitable)
        closer = asyncio.ensure_future(self._closed.wait())
        done, _ = await asyncio.wait({waiter, closer}, timeout=timeout,
                                     return_when=asyncio.FIRST_COMPLETED)
        for fut in (waiter, closer):
            if fut not in done:
                fut.cancel()
        if waiter in done:
            waiter.result()

    def _forget(self, token: str) -> None:
        self._held.pop(token, None)
        self._wake_slot()

    def _wake_slot(self) -> None:
        waiter = self._slot_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _start_renewer(self) -> None:
        if self._renewer is None:
            self._renewer = asyncio.ensure_future(self._renew_loop())

    def keeper(self) -> Callable[[], None] | None:
        return self._renew_blocking

    def _renew_blocking(self) -> None:
        held = [d.claim for d in list(self._held.values())]
        if held:
            lost = self.broker._renew_blocking(held, self.lease)
            if lost:  # the loop's next renewal marks them; their settles are refused anyway
                log.warning("%d lease(s) were lost while a task ran", len(lost))

    async def _renew_loop(self) -> None:
        while not self._closed.is_set() or self._held:
            await asyncio.sleep(self.lease / 3)
            held = list(self._held.values())
            if not held:
                continue
            try:
                lost = await self.broker._renew([d.claim for d in held], self.lease)
            except BrokerError as exc:  # the store is down: try again at the next tick
                log.warning("could not renew %d lease(s): %s", len(held), exc)
                continue
            for delivery in held:
                if delivery.claim.token in lost:
                    delivery.mark_lost()

    async def close(self) -> None:
        self._closed.set()
        self._wake_slot()
        await self._flush_riding()
        while self._ready:
            delivery = self._ready.popleft()
            try:
                await delivery.release()
            except BrokerError as exc:  # LeaseLost, or the store is down: the lease returns it
                log.warning("could not give back %s: %s", delivery.envelope.id, exc)
                delivery.abandon()

    async def aclose_renewer(self) -> None:
        """Stop renewing (after every held delivery was settled)."""
        if self._renewer is not None:
            self._renewer.cancel()
            self._renewer = None


def _resolve(riding: Sequence[tuple[Settle, asyncio.Future[None]]],
             outcomes: Sequence[BaseException | None]) -> None:
    for (_, future), outcome in zip(riding, outcomes, strict=True):
        if future.done():
            continue
        if outcome is None:
            future.set_result(None)
        else:
            future.set_exception(outcome)
