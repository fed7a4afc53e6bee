"""Signing, size limits and hostile bodies: refused before decoding, with reasons."""

from __future__ import annotations

import contextlib
import uuid

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conveyor import Conveyor, PayloadTooLarge, SerializationError, SignatureError
from conveyor.brokers import Envelope
from conveyor.errors import MessageError
from conveyor.signing import Signer
from conveyor.worker.execution import decode

OLD, NEW = "old-key-0123456789abcdef", "new-key-0123456789abcdef"


def test_a_signed_body_verifies_and_every_change_is_caught() -> None:
    signer = Signer([NEW, OLD], max_age=60)
    framed = signer.sign(b"payload", now=1000.0)
    assert signer.verify(framed, now=1010.0) == b"payload"
    tampered = framed[:-1] + b"X"
    with pytest.raises(SignatureError, match="does not match"):
        signer.verify(tampered, now=1010.0)
    with pytest.raises(SignatureError, match="unsigned"):
        signer.verify(b'{"v": 1}', now=1010.0)
    with pytest.raises(SignatureError, match="expired"):
        signer.verify(framed, now=1100.0)


def test_keys_rotate_old_messages_stay_valid_until_their_key_goes() -> None:
    before = Signer([OLD], max_age=None).sign(b"x", now=0.0)
    rotating = Signer([NEW, OLD], max_age=None)
    assert rotating.verify(before, now=1.0) == b"x"
    with pytest.raises(SignatureError, match="unknown key"):
        Signer([NEW], max_age=None).verify(before, now=1.0)
    assert NEW.encode() not in rotating.sign(b"x", now=0.0)  # no key travels


def test_an_app_with_keys_signs_and_its_worker_refuses_the_unsigned() -> None:
    app = Conveyor("t", broker="memory://", signing_keys=[NEW])

    @app.task(name="add")
    def add(x: int, y: int) -> int:
        return x + y

    signed = app.envelope(app.build_message("add", add.options, (1, 2), {}))
    message, task = decode(app, signed)
    assert (message.args, task.name) == ((1, 2), "add")
    plain = Conveyor("t", broker="memory://")
    plain.tasks = app.tasks
    unsigned = plain.envelope(plain.build_message("add", add.options, (1, 2), {}))
    with pytest.raises(SignatureError):
        decode(app, unsigned)
    assert "new-key" not in repr(app.conf)


def test_the_size_limit_holds_in_the_producer_and_the_worker() -> None:
    app = Conveyor("t", broker="memory://", max_message_size=1000)

    @app.task(name="echo")
    def echo(text: str) -> str:
        return text

    with pytest.raises(PayloadTooLarge, match="more than max_message_size"):
        echo.delay("x" * 2000)
    assert isinstance(PayloadTooLarge("x"), SerializationError)
    big = Envelope(str(uuid.uuid4()), "default", b"[" + b"1," * 5000 + b"1]")
    with pytest.raises(MessageError, match="exceeds max_message_size"):
        decode(app, big)


def test_deep_nesting_is_refused_on_both_sides() -> None:
    app = Conveyor("t", broker="memory://")
    deep: list[object] = []
    inner = deep
    for _ in range(5000):
        inner.append([])
        inner = inner[0]  # type: ignore[assignment]
    with pytest.raises(SerializationError, match="nested too deeply"):
        app.codec.dumps(deep)
    body = b"[" * 3000 + b"]" * 3000
    for content_type in ("application/json", "application/msgpack"):
        raw = body if content_type.endswith("json") else b"\x91" * 3000 + b"\x90"
        with pytest.raises(MessageError):
            decode(app, Envelope("x", "default", raw, content_type))


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300), st.sampled_from(
    ["application/json", "application/msgpack", "application/x-python-pickle", "text/plain"]))
def test_arbitrary_bytes_end_as_message_errors_only(body: bytes, content_type: str) -> None:
    app = _fuzz_app()
    # dead-lettered with a reason: the only outcome allowed besides a valid message
    with contextlib.suppress(MessageError):
        decode(app, Envelope("fuzz", "default", body, content_type))


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner,
                                                                max_size=4),
    max_leaves=20)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from(
    ["id", "task", "args", "kwargs", "queue", "priority", "retries", "options", "v", "eta",
     "expires", "created", "junk"]), _JSON, max_size=13))
def test_arbitrary_message_objects_end_as_message_errors_only(fields: dict[str, object]) -> None:
    import orjson

    app = _fuzz_app()
    with contextlib.suppress(MessageError):
        decode(app, Envelope("fuzz", "default", orjson.dumps(fields)))


_APP: list[Conveyor] = []


def _fuzz_app() -> Conveyor:
    if not _APP:
        app = Conveyor("fuzz", broker="memory://")
        app.task(name="t")(lambda *a, **k: None)
        _APP.append(app)
    return _APP[0]
