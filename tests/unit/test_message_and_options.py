from __future__ import annotations

import random

import pytest

from conveyor.errors import MalformedMessage, Retry
from conveyor.message import Message
from conveyor.options import TaskOptionsDict, build_options
from conveyor.states import State


def test_message_round_trip() -> None:
    msg = Message(id="i", task="t", args=(1, "a"), kwargs={"k": 2}, queue="q", priority=7,
                  eta=10.5, expires=20.0, retries=2, options={"x": 1})
    assert Message.from_dict(msg.to_dict()) == msg


@pytest.mark.parametrize(("change", "error"), [
    ({"v": 99}, "protocol"),
    ({"task": 5}, "'task' must be str"),
    ({"priority": True}, "'priority' must be int"),
    ({"eta": "soon"}, "'eta' must be a number"),
    ({"args": None}, "'args' must be list"),
])
def test_message_validation_names_the_field(change: dict[str, object], error: str) -> None:
    data = Message(id="i", task="t").to_dict() | change
    data["args"] = data["args"] if "args" in change else list(data["args"])
    with pytest.raises(MalformedMessage, match=error):
        Message.from_dict(data)


def test_missing_field() -> None:
    data = Message(id="i", task="t").to_dict()
    del data["queue"]
    with pytest.raises(MalformedMessage, match="missing field 'queue'"):
        Message.from_dict(data)


def test_backoff_doubles_and_caps() -> None:
    opts = build_options("default", {"retry_backoff": 2, "retry_jitter": False,
                                     "retry_backoff_max": 10})
    assert [opts.retry_delay(n) for n in range(5)] == [2, 4, 8, 10, 10]


def test_jitter_stays_within_the_delay() -> None:
    opts = build_options("default", {"retry_backoff": True})
    rng = random.Random(7)
    delays = [opts.retry_delay(3, rng) for _ in range(200)]
    assert all(0 <= d <= 8 for d in delays)
    assert len(set(delays)) > 100


def test_retries_alias_retries_any_exception() -> None:
    opts = build_options("default", {"retries": 2, "retry_jitter": False, "retry_backoff": 1})
    assert opts.max_retries == 2
    assert opts.retry_countdown(ValueError(), 0) == 1
    assert opts.retry_countdown(ValueError(), 2) is None


def test_autoretry_only_for_listed_types() -> None:
    given: TaskOptionsDict = {"autoretry_for": (OSError,), "default_retry_delay": 5}
    opts = build_options("default", given)
    assert opts.retry_countdown(OSError(), 0) == 5
    assert opts.retry_countdown(ValueError(), 0) is None


def test_explicit_retry_uses_its_countdown_and_limit() -> None:
    opts = build_options("default", {})
    assert opts.retry_countdown(Retry(countdown=9), 0) == 9
    assert opts.retry_countdown(Retry(countdown=9), 3) is None
    assert opts.retry_countdown(Retry(countdown=9, max_retries=5), 4) == 9


def test_priority_bounds() -> None:
    with pytest.raises(ValueError, match="0 to 9"):
        build_options("default", {"priority": 10})


def test_final_states() -> None:
    assert {s for s in State if s.final} == {State.SUCCESS, State.FAILURE, State.REVOKED,
                                             State.EXPIRED}


def test_unknown_task_option_names_it_and_lists_the_valid_ones() -> None:
    from conveyor import ConfigurationError, Conveyor

    app = Conveyor("t", broker="memory://")
    hint = r"'retyr_backoff' \(did you mean 'retry_backoff'"
    with pytest.raises(ConfigurationError, match=hint) as caught:
        app.task(retyr_backoff=True)(lambda: None)  # type: ignore[call-overload]
    assert "valid options:" in str(caught.value) and "time_limit" in str(caught.value)


def test_celery_retry_kwargs_are_accepted() -> None:
    from conveyor import ConfigurationError, Conveyor

    app = Conveyor("t", broker="memory://")

    @app.task(autoretry_for=(OSError,), retry_kwargs={"max_retries": 2, "countdown": 7})
    def fetch() -> None: ...

    assert fetch.options.max_retries == 2
    assert fetch.options.retry_countdown(OSError(), 1) == 7.0
    assert fetch.options.retry_countdown(OSError(), 2) is None
    with pytest.raises(ConfigurationError, match="retry_kwargs takes max_retries and countdown"):
        app.task(retry_kwargs={"max_retry": 1})(lambda: None)  # type: ignore[call-overload]


def test_unencodable_arguments_name_the_task_and_argument() -> None:
    from conveyor import Conveyor, SerializationError

    for serializer in ("json", "msgpack"):
        app = Conveyor("t", broker="memory://", serializer=serializer)

        @app.task
        def add(x: int, y: int = 0) -> int:
            return x + y

        with pytest.raises(SerializationError, match=r"add: argument args\[0\]: integer"):
            add.delay(2**70)
        with pytest.raises(SerializationError, match=r"keyword argument kwargs\['y'\]"):
            add.delay(1, y=-(2**64))


def test_new_ids_are_uuid4_strings_and_unique() -> None:
    import uuid

    from conveyor.message import new_id

    ids = [new_id() for _ in range(2000)]  # several draws of random bytes
    assert len(set(ids)) == len(ids)
    for value in ids[:600]:
        parsed = uuid.UUID(value)
        assert str(parsed) == value
        assert parsed.version == 4 and parsed.variant == uuid.RFC_4122


def test_a_forked_child_never_repeats_its_parents_ids() -> None:
    import os

    from conveyor.message import new_id

    new_id()  # the parent holds drawn random bytes now
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child
        os.write(write, new_id().encode())
        os._exit(0)
    os.close(write)
    child = os.read(read, 64).decode()
    os.close(read)
    os.waitpid(pid, 0)
    assert child != new_id()
