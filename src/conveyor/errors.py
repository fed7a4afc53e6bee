"""Every exception Conveyor raises derives from :class:`ConveyorError`.

Hierarchy::

    ConveyorError
    ├── ConfigurationError        bad URL or setting, unknown option (also a ValueError)
    ├── SerializationError        an argument or result cannot be encoded (raised in the producer)
    │   └── PayloadTooLarge       the encoded message exceeds ``max_message_size``
    ├── MessageError              a message that a worker cannot use; it is dead-lettered
    │   ├── MalformedMessage      undecodable body, missing or ill-typed fields
    │   ├── ContentTypeRefused    a content type the serializer was not configured to accept
    │   ├── SignatureError        unsigned, altered, unknown-key or expired (signing on)
    │   └── UnknownTask           no task of that name is registered in the worker's app
    ├── BrokerError               a store failed
    │   ├── BrokerUnavailable     cannot connect; names the URL with its password masked
    │   ├── NotReplicated         a write was not acknowledged by the replicas asked for (WAIT)
    │   ├── PublishRefused        the broker did not take a message: nacked or unroutable
    │   └── LeaseLost             the lease passed to another consumer (a zombie's settle)
    ├── ResultError
    │   ├── ResultTimeout         ``get(timeout=...)`` ran out before the task finished
    │   ├── TaskFailed            the task raised and its exception type could not be rebuilt
    │   ├── TaskRevoked           the task was revoked before it ran
    │   ├── TaskExpired           the task's ``expires`` passed before a worker started it
    │   └── ChordError            a chord member failed, so its callback never ran
    ├── TimeLimitExceeded         a task ran past its ``time_limit``
    ├── SoftTimeLimitExceeded     raised inside a task at its ``soft_time_limit`` (it may catch it)
    ├── TaskTerminated            raised inside a task stopped by ``revoke(terminate=True)``
    ├── DeliveryLimitExceeded     a message was handed out too often without an outcome
    └── Retry                     raised by ``self.retry()``; control flow, not a failure

Driver exceptions are converted at the boundary of each store (``raise BrokerUnavailable(...) from
exc``), so callers only need to catch these.
"""

from __future__ import annotations


class ConveyorError(Exception):
    """Base class of every Conveyor exception."""


class ConfigurationError(ConveyorError, ValueError):
    """The application, a task or a call was given an option or value that cannot work."""


class SerializationError(ConveyorError):
    """A value cannot be encoded or decoded by the configured serializer.

    ``path`` locates the offending part inside the value (keys and indexes) and ``why`` says
    what is wrong with it, when known.
    """

    def __init__(self, message: str, path: tuple[object, ...] = (), why: str = "") -> None:
        super().__init__(message)
        self.path = path
        self.why = why or message


class PayloadTooLarge(SerializationError):
    """The encoded message is larger than the app's ``max_message_size``."""


class MessageError(ConveyorError):
    """A message a worker cannot run; the worker dead-letters it with this text as the reason."""


class MalformedMessage(MessageError):
    """The body could not be decoded, or a required field is missing or of the wrong type."""


class ContentTypeRefused(MessageError):
    """The message's content type is not among those the app accepts (pickle unless enabled)."""


class SignatureError(MessageError):
    """Signing is on and the message is unsigned, altered, signed with an unknown key or too
    old; it is dead-lettered unread."""


class UnknownTask(MessageError):
    """No task of this name is registered in the worker's application."""


class BrokerError(ConveyorError):
    """A store (broker or result backend) failed."""


class BrokerUnavailable(BrokerError):
    """The store cannot be reached. The message names the URL with any password masked."""


class NotReplicated(BrokerError):
    """A write reached the primary but fewer replicas than the store's ``wait_replicas``
    acknowledged it in ``wait_timeout_ms``: it may be lost if the primary fails now. Repeating
    the publish with the same task id is safe (an id already queued is left as it is)."""


class PublishRefused(BrokerError):
    """The broker answered a publish with a refusal: a negative confirm (nack), or the message
    was returned as unroutable (no queue is bound where it was sent). Nothing was queued."""


class LeaseLost(BrokerError):
    """The delivery's lease expired and the message went to another consumer.

    Raised when a consumer that lost its lease (a zombie, e.g. after SIGSTOP) tries to settle it:
    its ack, retry or dead-letter is refused so only the current holder decides the outcome.
    """


class ResultError(ConveyorError):
    """Base class for errors raised while reading a task's outcome."""


class ResultTimeout(ResultError, TimeoutError):
    """The task did not finish within the timeout given to ``get``/``aget``."""


class TaskFailed(ResultError):
    """The task raised an exception whose type could not be rebuilt in this process.

    ``exc_type`` is the remote type's qualified name, ``remote_traceback`` its formatted traceback.
    """

    def __init__(self, exc_type: str, message: str, remote_traceback: str = "") -> None:
        super().__init__(f"{exc_type}: {message}")
        self.exc_type = exc_type
        self.message = message
        self.remote_traceback = remote_traceback


class TaskRevoked(ResultError):
    """The task was revoked and will not run."""


class TaskExpired(ResultError):
    """The task's expiry passed before a worker started it; it was not run."""


class ChordError(ResultError):
    """A member of a chord's header failed (or was revoked or expired): the chord failed at
    once and its callback never ran. The message names the member's task, id and error."""


class TimeLimitExceeded(ConveyorError):
    """The task ran longer than its ``time_limit`` and was stopped."""


class SoftTimeLimitExceeded(ConveyorError):
    """Raised inside a running task when it passes its ``soft_time_limit``: the task may catch
    it to clean up before its hard ``time_limit``. A thread in a blocking C call (``time.sleep``,
    a socket read) sees it only when that call returns."""


class TaskTerminated(ConveyorError):
    """Raised inside a running task that ``revoke(terminate=True)`` stopped (thread pools; a
    process-pool child is replaced and an async task cancelled instead). Its state is REVOKED."""


class DeliveryLimitExceeded(ConveyorError):
    """A message was handed out more than its delivery limit without reaching an outcome (the
    worker died each time, e.g. the task crashes its process); it was dead-lettered."""


class Retry(ConveyorError):
    """Raised by ``Task.retry`` to ask the worker to run the task again after ``countdown``."""

    def __init__(
        self, countdown: float | None = None, exc: BaseException | None = None,
        max_retries: int | None = None,
    ) -> None:
        super().__init__(f"retry in {countdown}s" if countdown is not None else "retry")
        self.countdown = countdown
        self.exc = exc
        self.max_retries = max_retries
