"""``conveyor events``: events as they happen, one line each (or JSON lines)."""

from __future__ import annotations

import datetime as dt
import fnmatch
import json
from collections.abc import Sequence
from typing import TYPE_CHECKING

import click

from .events import Event

if TYPE_CHECKING:
    from .app import Conveyor

#: Fields shown inline after the head of a line, in this order, when present.
_SHOWN = ("queue", "runtime", "error", "message", "delay", "reason", "result", "retries",
          "active", "processed", "failed")


async def follow(app: Conveyor, after: str | None, kinds: Sequence[str], count: int | None,
                 as_json: bool) -> None:
    """Print events from ``app`` until ``count`` were shown (forever without it)."""
    shown = 0
    async for event in app.events(after):
        if kinds and not any(fnmatch.fnmatch(event.kind, k) for k in kinds):
            continue
        click.echo(json.dumps(event.to_dict(), default=str) if as_json else line(event))
        shown += 1
        if count is not None and shown >= count:
            break
    await app.aclose()


def line(event: Event) -> str:
    """``12:00:01.123 task-succeeded shop.add[id] @host.1/2 runtime=0.003``."""
    when = dt.datetime.fromtimestamp(event.at).strftime("%H:%M:%S.%f")[:-3]
    head = f"{event.task}[{event.task_id}]" if event.task_id else ""
    where = f"@{event.worker}/{event.pid}" if event.worker else ""
    details = " ".join(f"{name}={_value(name, event.fields[name])}" for name in _SHOWN
                       if event.fields.get(name) not in (None, "", []))
    return " ".join(part for part in (when, f"{event.kind:<19}", head, where, details) if part)


def _value(name: str, value: object) -> str:
    if name == "active" and isinstance(value, list):
        return str(len(value))
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value)
