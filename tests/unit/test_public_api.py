"""The public names are a contract: adding or removing one is a deliberate change."""

from __future__ import annotations

import conveyor
from conveyor.outcome import ErrorInfo
from conveyor.urls import mask_url

EXPECTED = {
    "AsyncResult", "AsyncTask", "BrokerError", "BrokerUnavailable", "ConfigurationError",
    "ContentTypeRefused", "Conveyor", "ConveyorError", "ErrorInfo", "LeaseLost",
    "MalformedMessage", "Message", "MessageError", "Outcome", "PayloadTooLarge", "RemoteTraceback",
    "Request", "ResultError", "ResultTimeout", "Retry", "SerializationError", "Signature",
    "SignatureError", "State", "Task", "TaskExpired", "TaskFailed", "TaskRevoked",
    "TimeLimitExceeded", "UnknownTask", "Worker",
    "SoftTimeLimitExceeded", "TaskTerminated",
    # workflows
    "ChordError", "GroupResult", "chain", "chord", "group", "signature",
}


def test_all_is_pinned() -> None:
    assert set(conveyor.__all__) == EXPECTED
    assert set(conveyor._LAZY) == EXPECTED
    for name in EXPECTED:
        assert getattr(conveyor, name).__doc__, f"{name} has no docstring"


def test_every_error_derives_from_the_base() -> None:
    errors = [getattr(conveyor, n) for n in EXPECTED if n.endswith(("Error", "Exceeded"))]
    assert all(issubclass(e, conveyor.ConveyorError) for e in errors)


def test_mask_url_hides_passwords() -> None:
    assert mask_url("redis://user:s3cret@host:6379/0") == "redis://user:***@host:6379/0"
    assert mask_url("redis://:s3cret@host/0") == "redis://:***@host/0"
    assert mask_url("sqlite:///x.db") == "sqlite:///x.db"
    sentinel = "redis+sentinel://:pw1@h1:26379,h2:26379/main?sentinel_password=pw2&db=1"
    assert mask_url(sentinel) == (
        "redis+sentinel://:***@h1:26379,h2:26379/main?sentinel_password=***&db=1")
    assert mask_url("redis://h/0?password=pw3") == "redis://h/0?password=***"
    assert mask_url("redis://u:p@ss@h:1/0") == "redis://u:***@h:1/0"
    app = conveyor.Conveyor("x", broker="redis://u:hunter2@localhost:6379/0")
    assert "hunter2" not in repr(app)


def test_error_rebuild_keeps_type_and_remote_traceback() -> None:
    try:
        raise KeyError("missing")
    except KeyError as exc:
        info = ErrorInfo.from_exception(exc)
    rebuilt = info.rebuild()
    assert isinstance(rebuilt, KeyError)
    assert isinstance(rebuilt.__cause__, conveyor.RemoteTraceback)
    assert "raise KeyError" in rebuilt.__cause__.text


def test_unknown_error_type_becomes_task_failed() -> None:
    info = ErrorInfo("not_imported_module.WeirdError", "odd", "tb")
    rebuilt = info.rebuild()
    assert isinstance(rebuilt, conveyor.TaskFailed)
    assert rebuilt.exc_type == "not_imported_module.WeirdError"
