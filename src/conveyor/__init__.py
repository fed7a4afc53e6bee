"""Conveyor: a distributed task queue for Python.

``app = Conveyor("shop")``, ``@app.task``, ``send_email.delay(...)``, ``conveyor worker -A shop``.
"""

from .app import Conveyor
from .canvas import Signature
from .errors import (
    BrokerError,
    BrokerUnavailable,
    ConfigurationError,
    ContentTypeRefused,
    ConveyorError,
    LeaseLost,
    MalformedMessage,
    MessageError,
    ResultError,
    ResultTimeout,
    Retry,
    SerializationError,
    TaskExpired,
    TaskFailed,
    TaskRevoked,
    TimeLimitExceeded,
    UnknownTask,
)
from .message import Message
from .outcome import ErrorInfo, Outcome, RemoteTraceback
from .result import AsyncResult
from .states import State
from .task import AsyncTask, Request, Task
from .worker import Worker

__all__ = [
    "AsyncResult",
    "AsyncTask",
    "BrokerError",
    "BrokerUnavailable",
    "ConfigurationError",
    "ContentTypeRefused",
    "Conveyor",
    "ConveyorError",
    "ErrorInfo",
    "LeaseLost",
    "MalformedMessage",
    "Message",
    "MessageError",
    "Outcome",
    "RemoteTraceback",
    "Request",
    "ResultError",
    "ResultTimeout",
    "Retry",
    "SerializationError",
    "Signature",
    "State",
    "Task",
    "TaskExpired",
    "TaskFailed",
    "TaskRevoked",
    "TimeLimitExceeded",
    "UnknownTask",
    "Worker",
]
