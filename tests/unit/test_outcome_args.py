"""A failure whose exception holds arguments the serializer cannot carry keeps its type, message
and traceback (its arguments become the message), instead of turning into a SerializationError."""

from __future__ import annotations

from conveyor import Conveyor, State
from conveyor.outcome import ErrorInfo, Outcome


def nested_failure() -> ErrorInfo:
    try:
        raise ValueError(ValueError("inner"))
    except ValueError as exc:
        return ErrorInfo.from_exception(exc)


def test_an_exception_with_unencodable_args_keeps_its_type_and_traceback() -> None:
    app = Conveyor("outcome-args", broker="memory://outcome-args")
    error = nested_failure()
    stored = Outcome(State.FAILURE, error=error, task="t").encode(app.codec, 1)
    found = Outcome.decode(app.codec, stored)
    assert found.state is State.FAILURE and found.error is not None
    assert found.error.type == "ValueError" and found.error.message == "inner"
    assert found.error.traceback == error.traceback
    assert 'raise ValueError(ValueError("inner"))' in found.error.traceback
    rebuilt = found.error.rebuild()
    assert isinstance(rebuilt, ValueError) and str(rebuilt) == "inner"


def test_a_value_that_cannot_be_encoded_still_fails_as_before() -> None:
    app = Conveyor("outcome-args", broker="memory://outcome-args-2")
    stored = Outcome(State.SUCCESS, value=object(), task="t").encode(app.codec, 1)
    found = Outcome.decode(app.codec, stored)
    assert found.state is State.FAILURE and found.error is not None
    assert found.error.type == "conveyor.errors.SerializationError"
