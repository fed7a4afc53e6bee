"""The Redis store's event log: a stream capped by length and age, and a hash of the latest
heartbeat of each worker process. Both keys stand alone (one hash slot each).

An append is one pipeline: one ``XADD ... MAXLEN ~ n`` carrying the whole batch (an event's id
is ``entry:index``; ``n`` entries keep about the retention's count of events; approximate:
O(1), the stream stays within one macro node of its bound), an exact ``XTRIM ... MINID`` for the
age limit (entries older than the age by the server's clock; it costs what it removes), and the
heartbeat hash updates.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..events import WORKER_KINDS, WORKER_OFFLINE, Event, Retention, decode_batch, encode_batch


def events_key(prefix: str) -> str:
    """The stream of events."""
    return f"{prefix}:events"


def workers_key(prefix: str) -> str:
    """The hash ``worker/pid`` -> latest heartbeat event."""
    return f"{prefix}:workers"


def append_commands(prefix: str, events: Sequence[Event], retention: Retention,
                    now: float) -> list[tuple[Any, ...]]:
    """The commands of one append (see the module docstring)."""
    stream, workers = events_key(prefix), workers_key(prefix)
    commands: list[tuple[Any, ...]] = [
        ("XADD", stream, "MAXLEN", "~", retention.entries(len(events)), "*", "e",
         encode_batch(events))]
    oldest_ms = max(0, int((now - retention.age) * 1000))
    commands.append(("XTRIM", stream, "MINID", oldest_ms))
    for event in events:
        if event.kind == WORKER_OFFLINE:
            commands.append(("HDEL", workers, event.process))
        elif event.kind in WORKER_KINDS:
            commands.append(("HSET", workers, event.process, event.encode()))
    return commands


def parse_entries(entries: Sequence[Any]) -> list[Event]:
    """Events from stream entries ``[(id, {b"e": batch}), ...]``, ids ``entry:index``."""
    found = []
    for entry_id, fields in entries:
        data = fields.get(b"e") if isinstance(fields, dict) else None
        if data is not None:
            found.extend(decode_batch(data, _text(entry_id)))
    return found


def parse_read(reply: Any) -> list[Event]:
    """Events from an XREAD reply (a list of ``[stream, entries]``, or a dict in RESP3)."""
    if not reply:
        return []
    streams = reply.items() if isinstance(reply, dict) else reply
    return [event for _, entries in streams for event in parse_entries(entries)]


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
