from __future__ import annotations

import pickle
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from uuid import UUID, uuid4

import pytest

from conveyor.errors import ContentTypeRefused, MalformedMessage, SerializationError
from conveyor.serializers import PICKLE, Codec, JSONSerializer, MsgpackSerializer

VALUES = {
    "datetime": datetime(2026, 1, 2, 3, 4, 5, 678, tzinfo=UTC),
    "naive": datetime(2026, 1, 2, 3, 4, 5),
    "date": date(2026, 1, 2),
    "uuid": UUID("12345678-1234-5678-1234-567812345678"),
    "decimal": Decimal("3.14159265358979323846"),
    "bytes": b"\x00\xff raw",
    "timedelta": timedelta(hours=1, microseconds=5),
    "nested": [{"a": [1, 2.5, None, True]}, "s"],
    "dollar": {"$dt": "not a date"},
}


@pytest.mark.parametrize("serializer", [JSONSerializer(), MsgpackSerializer()])
@pytest.mark.parametrize("name", sorted(VALUES))
def test_round_trip(serializer: JSONSerializer | MsgpackSerializer, name: str) -> None:
    value = VALUES[name]
    assert serializer.loads(serializer.dumps(value)) == value


def test_tuples_come_back_as_lists() -> None:
    s = JSONSerializer()
    assert s.loads(s.dumps((1, (2, 3)))) == [1, [2, 3]]


def test_unserializable_argument_names_type_and_place() -> None:
    with pytest.raises(SerializationError, match=r"\[1\]\['k'\].*object"):
        JSONSerializer().dumps([0, {"k": object()}])


def test_non_string_keys_refused() -> None:
    with pytest.raises(SerializationError, match="keys must be str"):
        JSONSerializer().dumps({1: "x"})


def test_garbage_is_malformed() -> None:
    with pytest.raises(MalformedMessage):
        JSONSerializer().loads(b"{not json")
    with pytest.raises(MalformedMessage):
        MsgpackSerializer().loads(b"\xc1")


def test_pickle_refused_unless_accepted() -> None:
    evil = pickle.dumps({"x": 1})
    with pytest.raises(ContentTypeRefused, match="not accepted"):
        Codec().loads(evil, PICKLE)
    assert Codec(accept=("json", "pickle")).loads(evil, PICKLE) == {"x": 1}


def test_codec_decodes_other_accepted_types() -> None:
    codec = Codec("json", accept=("json", "msgpack"))
    packed = MsgpackSerializer().dumps({"id": str(uuid4())})
    assert "id" in codec.loads(packed, "application/msgpack")
    with pytest.raises(ContentTypeRefused):
        codec.loads(b"x", "text/plain")


@pytest.mark.parametrize("serializer", ["json", "msgpack", "pickle"])
def test_a_message_encodes_as_the_whole_value_would(serializer: str) -> None:
    """The message fast path (only args, kwargs and options tagged) gives the same bytes."""
    from conveyor.message import Message

    codec = Codec(serializer, ["json", "msgpack", "pickle"])
    for args, kwargs in [((), {}), ((1, "a", None, 2.5, True), {"k": 1}),
                         ((VALUES["datetime"], [VALUES["uuid"]]), {"d": VALUES["dollar"]}),
                         ((("nested", (1, 2)),), {"$only": 1})]:
        data = Message(id="m", task="t", args=args, kwargs=kwargs,
                       options={"link": [{"$dt": 1}]}).to_dict()
        assert codec.dumps_message(data) == codec.dumps(data)
        assert codec.loads(codec.dumps_message(data), codec.content_type)["kwargs"] == kwargs
        body = codec.dumps_message(data)
        assert codec.loads_message(body, codec.content_type) == codec.loads(
            body, codec.content_type)


@pytest.mark.parametrize("body", [b'{"$dt": "2026-01-02T03:04:05"}', b"[1, 2]", b'"text"',
                                  b'{"args": [{"$uuid": "not-a-uuid"}], "v": 1}', b"{"])
def test_a_body_that_is_no_message_decodes_as_loads_does(body: bytes) -> None:
    codec = Codec()
    try:
        expected = codec.loads(body, codec.content_type)
    except MalformedMessage:
        with pytest.raises(MalformedMessage):
            codec.loads_message(body, codec.content_type)
        return
    assert codec.loads_message(body, codec.content_type) == expected


def test_a_refused_message_argument_is_named_by_its_path() -> None:
    from conveyor.message import Message

    data = Message(id="m", task="t", args=(1, {"x": [object()]})).to_dict()
    with pytest.raises(SerializationError, match=r"value\['args'\]\[1\]\['x'\]\[0\]"):
        Codec().dumps_message(data)
