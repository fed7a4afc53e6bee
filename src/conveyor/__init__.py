"""Conveyor: a distributed task queue for Python.

``app = Conveyor("shop")``, ``@app.task``, ``send_email.delay(...)``, ``conveyor worker -A shop``.

Names are imported on first use, so the worker's supervisor process (which only starts and
watches children) stays small.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .app import Conveyor
    from .canvas import GroupResult, Signature, chain, chord, group, signature
    from .errors import (
        BrokerError,
        BrokerUnavailable,
        ChordError,
        ConfigurationError,
        ContentTypeRefused,
        ConveyorError,
        LeaseLost,
        MalformedMessage,
        MessageError,
        PayloadTooLarge,
        ResultError,
        ResultTimeout,
        Retry,
        SerializationError,
        SignatureError,
        SoftTimeLimitExceeded,
        TaskExpired,
        TaskFailed,
        TaskRevoked,
        TaskTerminated,
        TimeLimitExceeded,
        UnknownTask,
    )
    from .message import Message
    from .outcome import ErrorInfo, Outcome, RemoteTraceback
    from .result import AsyncResult
    from .states import State
    from .task import AsyncTask, Request, Task
    from .worker import Worker

_LAZY = {
    "AsyncResult": ".result",
    "AsyncTask": ".task",
    "BrokerError": ".errors",
    "BrokerUnavailable": ".errors",
    "ChordError": ".errors",
    "ConfigurationError": ".errors",
    "ContentTypeRefused": ".errors",
    "Conveyor": ".app",
    "ConveyorError": ".errors",
    "ErrorInfo": ".outcome",
    "GroupResult": ".canvas",
    "LeaseLost": ".errors",
    "MalformedMessage": ".errors",
    "Message": ".message",
    "MessageError": ".errors",
    "PayloadTooLarge": ".errors",
    "Outcome": ".outcome",
    "RemoteTraceback": ".outcome",
    "Request": ".task",
    "ResultError": ".errors",
    "ResultTimeout": ".errors",
    "Retry": ".errors",
    "SerializationError": ".errors",
    "SignatureError": ".errors",
    "Signature": ".canvas",
    "SoftTimeLimitExceeded": ".errors",
    "State": ".states",
    "Task": ".task",
    "TaskExpired": ".errors",
    "TaskFailed": ".errors",
    "TaskRevoked": ".errors",
    "TaskTerminated": ".errors",
    "TimeLimitExceeded": ".errors",
    "UnknownTask": ".errors",
    "Worker": ".worker",
    "chain": ".canvas",
    "chord": ".canvas",
    "group": ".canvas",
    "signature": ".canvas",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'conveyor' has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


__all__ = [
    "AsyncResult",
    "AsyncTask",
    "BrokerError",
    "BrokerUnavailable",
    "ChordError",
    "ConfigurationError",
    "ContentTypeRefused",
    "Conveyor",
    "ConveyorError",
    "ErrorInfo",
    "GroupResult",
    "LeaseLost",
    "MalformedMessage",
    "Message",
    "MessageError",
    "Outcome",
    "PayloadTooLarge",
    "RemoteTraceback",
    "Request",
    "ResultError",
    "ResultTimeout",
    "Retry",
    "SerializationError",
    "Signature",
    "SignatureError",
    "SoftTimeLimitExceeded",
    "State",
    "Task",
    "TaskExpired",
    "TaskFailed",
    "TaskRevoked",
    "TaskTerminated",
    "TimeLimitExceeded",
    "UnknownTask",
    "Worker",
    "chain",
    "chord",
    "group",
    "signature",
]
