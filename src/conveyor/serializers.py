"""Serializers turn task arguments and results into bytes and back.

JSON (orjson) is the default. Beyond JSON's own types it round-trips, by tagging them in a
one-key object: ``datetime`` (``{"$dt": iso}``), ``date`` (``{"$date": iso}``), ``UUID``
(``{"$uuid": str}``), ``Decimal`` (``{"$dec": str}``), ``bytes`` (``{"$b64": base64}``) and
``timedelta`` (``{"$td": seconds}``). Tuples come back as lists. A dict whose only key starts with
``$`` is escaped as ``{"$map": {...}}`` so user data is never mistaken for a tag.

msgpack (``application/msgpack``) uses the same tags. Pickle is available only when the
application lists it in ``accept_content``; otherwise a pickled message is refused *before* its
bytes are decoded.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterable
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any, Protocol
from uuid import UUID

import orjson

from .errors import ContentTypeRefused, MalformedMessage, SerializationError

JSON = "application/json"
MSGPACK = "application/msgpack"
PICKLE = "application/x-python-pickle"

_SCALARS = (str, int, float, bool, type(None))
#: The fields of a message's wire form that carry user values.
MESSAGE_FIELDS = ("args", "kwargs", "options")


class Serializer(Protocol):
    """Encodes values to bytes and back. ``loads`` raises MalformedMessage on bad input."""

    content_type: str

    def dumps(self, value: Any) -> bytes: ...

    def loads(self, data: bytes) -> Any: ...


class _Refused(Exception):
    """A value no tag fits; :func:`_encode` turns it into a SerializationError with its path."""

    def __init__(self, why: str, path: tuple[Any, ...] = ()) -> None:
        self.why, self.path = why, path


def _encode(value: Any) -> Any:
    """The tagged form of ``value``; SerializationError naming where the bad part sits."""
    try:
        return _tag(value)
    except _Refused as refused:
        raise _error(tuple(reversed(refused.path)), refused.why) from None
    except RecursionError:
        raise _error((), "nested too deeply (or it contains itself)") from None


def _error(path: tuple[Any, ...], why: str) -> SerializationError:
    return SerializationError(f"{describe_path(path)}: {why}", path, why)


def describe_path(path: tuple[Any, ...], root: str = "value") -> str:
    """``value['a'][0]`` for the path ``('a', 0)``."""
    return root + "".join(f"[{step!r}]" for step in path)


#: The integers JSON (orjson) and msgpack carry: signed and unsigned 64-bit.
_INT_RANGE = range(-(2**63), 2**64)


def _refused_by_encoder(value: Any, exc: Exception) -> SerializationError:
    """Explain an encoder's refusal of an already tagged value: find the offending part (only
    ever run on failure, so the common path pays nothing for it)."""
    found = _find_bad(value, ())
    if found is None:
        return _error((), f"cannot be encoded: {exc}")
    path, bad = found
    return _error(path, f"integer {bad} is out of the 64-bit range JSON and msgpack carry"
                        " (send it as a string, or enable pickle)")


def _find_bad(value: Any, path: tuple[Any, ...]) -> tuple[tuple[Any, ...], int] | None:
    if isinstance(value, int) and not isinstance(value, bool) and value not in _INT_RANGE:
        return path, value
    items = value.items() if isinstance(value, dict) else (
        enumerate(value) if isinstance(value, list | tuple) else ())
    for key, item in items:
        found = _find_bad(item, (*path, key))
        if found is not None:
            return found
    return None


#: Exact types that need no tag (a subclass of one, e.g. an IntEnum, takes the slow path).
_PLAIN = frozenset(_SCALARS)


def _tag(value: Any) -> Any:
    # The path to a refused value is rebuilt only on failure, keeping the common case cheap.
    if isinstance(value, _SCALARS):
        return value
    kind = type(value)
    if kind is tuple or kind is list:
        if all(type(item) in _PLAIN for item in value):  # as is: encoders take tuples as lists
            return value
    elif kind is dict and _plain_dict(value):
        return value
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise _Refused(f"dict keys must be str, got {type(key).__name__}")
            out[key] = _step(item, key)
        return {"$map": out} if len(out) == 1 and next(iter(out)).startswith("$") else out
    if isinstance(value, list | tuple):
        return [_step(item, index) for index, item in enumerate(value)]
    return _tag_special(value)


def _plain_dict(value: dict[Any, Any]) -> bool:
    """Whether a dict goes out as is: str keys, scalar values, and not one ``$`` key."""
    if not all(type(key) is str for key in value):
        return False
    if len(value) == 1 and next(iter(value)).startswith("$"):
        return False
    return all(type(item) in _PLAIN for item in value.values())


def encode_fields(data: dict[str, Any], fields: tuple[str, ...]) -> dict[str, Any]:
    """``data`` with only ``fields`` tagged: for a record whose other values are scalars by
    construction (a message's wire form), which saves walking them. Errors as :func:`_encode`."""
    out = dict(data)
    try:
        for name in fields:
            value = data[name]
            if value:
                out[name] = _step(value, name)
    except _Refused as refused:
        raise _error(tuple(reversed(refused.path)), refused.why) from None
    return out


def _step(value: Any, where: Any) -> Any:
    if isinstance(value, _SCALARS):
        return value
    try:
        return _tag(value)
    except _Refused as refused:
        raise _Refused(refused.why, (*refused.path, where)) from None


def _tag_special(value: Any) -> Any:
    if isinstance(value, datetime):
        return {"$dt": value.isoformat()}
    if isinstance(value, date):
        return {"$date": value.isoformat()}
    if isinstance(value, UUID):
        return {"$uuid": str(value)}
    if isinstance(value, Decimal):
        return {"$dec": str(value)}
    if isinstance(value, bytes | bytearray | memoryview):
        return {"$b64": base64.b64encode(bytes(value)).decode()}
    if isinstance(value, timedelta):
        return {"$td": value.total_seconds()}
    raise _Refused(
        f"object of type {type(value).__module__}.{type(value).__qualname__}"
        " is not serializable (supported: JSON types, datetime, date, UUID, Decimal, bytes,"
        " timedelta; or enable pickle)"
    )


_UNTAG: dict[str, Callable[[Any], Any]] = {
    "$dt": datetime.fromisoformat,
    "$date": date.fromisoformat,
    "$uuid": UUID,
    "$dec": Decimal,
    "$b64": base64.b64decode,
    "$td": lambda s: timedelta(seconds=s),
}


def _untag(value: Any) -> Any:
    if isinstance(value, list):
        return [_untag(v) for v in value]
    if not isinstance(value, dict):
        return value
    if len(value) == 1:
        ((key, inner),) = value.items()
        if key == "$map":
            return {k: _untag(v) for k, v in inner.items()}
        if key in _UNTAG:
            return _UNTAG[key](inner)
    return {k: _untag(v) for k, v in value.items()}


def _untag_message(value: Any) -> Any:
    if not isinstance(value, dict) or len(value) == 1:  # not a message: the general walk
        return _untag(value)
    for name in MESSAGE_FIELDS:
        if name in value:
            value[name] = _untag(value[name])
    return value


class JSONSerializer:
    """The default: orjson with the tags described in this module's docstring."""

    content_type = JSON

    def dumps(self, value: Any) -> bytes:
        return self.dumps_tagged(_encode(value))

    def dumps_tagged(self, tagged: Any) -> bytes:
        """Encode a value already in its tagged form."""
        try:
            return orjson.dumps(tagged)
        except (orjson.JSONEncodeError, TypeError, OverflowError) as exc:
            raise _refused_by_encoder(tagged, exc) from None

    def loads(self, data: bytes, untag: Callable[[Any], Any] | None = None) -> Any:
        """Decode; ``untag`` replaces the walk that restores tagged values (see
        :meth:`Codec.loads_message`)."""
        try:
            return (untag or _untag)(orjson.loads(data))
        except (orjson.JSONDecodeError, ValueError, TypeError, RecursionError) as exc:
            raise MalformedMessage(f"undecodable JSON body: {exc}") from exc


class MsgpackSerializer:
    """msgpack with the same tags as JSON; more compact, binary-safe."""

    content_type = MSGPACK

    def dumps(self, value: Any) -> bytes:
        return self.dumps_tagged(_encode(value))

    def dumps_tagged(self, tagged: Any) -> bytes:
        """Encode a value already in its tagged form."""
        import msgpack  # imported on first use: a process that never sees msgpack saves ~1 MB

        try:
            return msgpack.packb(tagged, use_bin_type=True)  # type: ignore[no-any-return]
        except (TypeError, OverflowError, ValueError) as exc:
            raise _refused_by_encoder(tagged, exc) from None

    def loads(self, data: bytes, untag: Callable[[Any], Any] | None = None) -> Any:
        """Decode; ``untag`` as in :meth:`JSONSerializer.loads`."""
        import msgpack

        try:
            return (untag or _untag)(msgpack.unpackb(data, raw=False))
        except (ValueError, TypeError, RecursionError, msgpack.ExtraData, msgpack.FormatError,
                msgpack.StackError) as exc:
            raise MalformedMessage(f"undecodable msgpack body: {exc}") from exc


class PickleSerializer:
    """Pickle: any picklable value. Decoding runs code, so only enable it among trusted parties."""

    content_type = PICKLE

    def dumps(self, value: Any) -> bytes:
        import pickle  # imported on first use, as pickle is off unless an app accepts it

        try:
            return pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
        except Exception as exc:
            raise SerializationError(f"value is not picklable: {exc}") from exc

    def loads(self, data: bytes) -> Any:
        import pickle

        try:
            return pickle.loads(data)
        except Exception as exc:
            raise MalformedMessage(f"undecodable pickle body: {exc}") from exc


_BY_NAME: dict[str, Callable[[], Serializer]] = {
    "json": JSONSerializer,
    JSON: JSONSerializer,
    "msgpack": MsgpackSerializer,
    MSGPACK: MsgpackSerializer,
    "pickle": PickleSerializer,
    PICKLE: PickleSerializer,
}


def get_serializer(name: str) -> Serializer:
    """A serializer by short name (``json``, ``msgpack``, ``pickle``) or content type."""
    try:
        return _BY_NAME[name]()
    except KeyError:
        raise SerializationError(
            f"unknown serializer {name!r}; use json, msgpack or pickle") from None


class Codec:
    """Encodes with one serializer and decodes only the content types it was told to accept."""

    def __init__(self, serializer: str = "json", accept: Iterable[str] = ("json", "msgpack")):
        self.serializer = get_serializer(serializer)
        self.accepted = {s.content_type: s for s in map(get_serializer, accept)}
        self.accepted[self.serializer.content_type] = self.serializer

    @property
    def content_type(self) -> str:
        return self.serializer.content_type

    def dumps(self, value: Any) -> bytes:
        return self.serializer.dumps(value)

    def dumps_message(self, data: dict[str, Any]) -> bytes:
        """Encode a message's wire form (:meth:`Message.to_dict`): only its ``args``,
        ``kwargs`` and ``options`` can hold values that need a tag."""
        tagged = getattr(self.serializer, "dumps_tagged", None)
        if tagged is None:
            return self.serializer.dumps(data)
        return tagged(encode_fields(data, MESSAGE_FIELDS))  # type: ignore[no-any-return]

    def loads(self, data: bytes, content_type: str) -> Any:
        """Decode ``data``; raises ContentTypeRefused before touching a refused body."""
        serializer = self.accepted.get(content_type)
        if serializer is None:
            raise ContentTypeRefused(
                f"content type {content_type!r} is not accepted (accepted:"
                f" {', '.join(sorted(self.accepted))})"
            )
        return serializer.loads(data)

    def loads_message(self, data: bytes, content_type: str) -> Any:
        """Decode a message's wire form, restoring tagged values only in ``args``, ``kwargs``
        and ``options`` (a message's other fields are scalars; a body that is not a message
        object comes back as decoded, for :meth:`Message.from_dict` to refuse)."""
        serializer = self.accepted.get(content_type)
        if not isinstance(serializer, JSONSerializer | MsgpackSerializer):
            return self.loads(data, content_type)
        return serializer.loads(data, _untag_message)
