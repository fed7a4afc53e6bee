"""The application's settings: ``app.conf``, one typed object with every setting and its default.

Where a value comes from, later winning: the defaults below; environment variables
``CONVEYOR_<NAME>`` (``CONVEYOR_RESULT_TTL=3600``), read when the app is created; keyword
arguments of ``Conveyor(...)``; then anything set later with ``app.conf.name = value``,
``app.conf.update({...})`` or ``app.config_from_object(...)``.

``app.conf`` offers attribute and mapping access alike (``app.conf.result_ttl``,
``app.conf["result_ttl"]``). An unknown name is an error that lists the known ones, and values
are checked and converted on the way in (``"3600"`` from the environment becomes ``3600.0``).
The table of settings in the guide is generated from :data:`SETTINGS`, so the two agree.
"""

from __future__ import annotations

import importlib
import json
import os
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, TypedDict

from .errors import ConfigurationError

ENV_PREFIX = "CONVEYOR_"


@dataclass(frozen=True, slots=True)
class Setting:
    """One setting: its name, default, how a given value is converted, and what it means."""

    name: str
    default: Any
    convert: Callable[[Any], Any]
    doc: str
    env: str = ""  # the environment variable, when it is not CONVEYOR_<NAME>


def _bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"expected true or false, got {value!r}")


def _names(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        return tuple(part.strip() for part in value.split(",") if part.strip())
    return tuple(str(v) for v in value)


def _optional_str(value: Any) -> str | None:
    return None if value is None or value == "" else str(value)


def _positive(kind: Callable[[Any], float | int]) -> Callable[[Any], Any]:
    def convert(value: Any) -> Any:
        number = kind(value)
        if number <= 0:
            raise ValueError(f"must be positive, got {value!r}")
        return number
    return convert


def _optional_positive(value: Any) -> float | None:
    if value is None or value == "":
        return None
    number = float(value)
    if number <= 0:
        raise ValueError(f"must be positive, got {value!r}")
    return number


def _rates(value: Any) -> dict[str, str]:
    from .rates import parse_rate

    found = _mapping(value)
    for rate in found.values():
        parse_rate(rate)  # ConfigurationError (a ValueError) names the bad one
    return {str(k): str(v) for k, v in found.items()}


def _mapping(value: Any) -> dict[str, Any]:
    if isinstance(value, str):
        value = json.loads(value)
    if not isinstance(value, Mapping):
        raise ValueError(f"expected a mapping, got {type(value).__name__}")
    return dict(value)


SETTINGS: tuple[Setting, ...] = (
    Setting("broker_url", None, _optional_str,
            "Where messages go: `sqlite:///conveyor.db` (the default when unset), `redis://...`,"
            " `memory://`.", env="CONVEYOR_BROKER_URL"),
    Setting("result_backend", None, _optional_str,
            "Where outcomes are kept; unset: the broker's store.", env="CONVEYOR_RESULT_BACKEND"),
    Setting("serializer", "json", str, "How messages and results are encoded: `json`,"
            " `msgpack` or `pickle`."),
    Setting("accept_content", ("json", "msgpack"), _names,
            "Content types a worker decodes; anything else is refused before decoding."),
    Setting("default_queue", "default", str, "The queue of tasks that name none."),
    Setting("result_ttl", 86400.0, _positive(float), "Seconds outcomes are kept."),
    Setting("lease", 30.0, _positive(float),
            "Seconds a silent worker keeps its tasks before they go to another."),
    Setting("dead_letter_failures", True, _bool,
            "Failed tasks (after their retries) also go to the dead-letter queue."),
    Setting("track_started", True, _bool,
            "Record STARTED when a task begins; off: PENDING until it ends (tasks may say"
            " otherwise with `@app.task(track_started=...)`)."),
    Setting("delivery_limit", 5, _positive(int),
            "Deliveries without an outcome (the worker died each time) before a message is"
            " dead-lettered with \"delivery limit reached\" and its result set to FAILURE."),
    Setting("events", True, _bool,
            "Record task and worker events (the feed of `conveyor events`, the dashboard,"
            " metrics and `inspect`)."),
    Setting("send_sent_events", False, _bool,
            "Also record an event when a task is sent (costs the producer a round trip)."),
    Setting("event_retention", 100_000, _positive(int), "Events kept in the store, at most."),
    Setting("event_max_age", 86400.0, _positive(float), "Seconds events are kept, at most."),
    Setting("heartbeat_interval", 2.0, _positive(float),
            "Seconds between a worker's heartbeats; three missed ones count as offline."),
    Setting("routes", {}, _mapping,
            "Queue by task name: `{\"shop.emails.*\": \"emails\"}` (glob patterns)."),
    Setting("timezone", "UTC", str, "The time zone of periodic schedules that name none."),
    Setting("max_message_size", 4 * 1024 * 1024, _positive(int),
            "Bytes an encoded message may take; a larger one is refused in the producer"
            " (PayloadTooLarge) and dead-lettered by a worker."),
    Setting("signing_keys", (), _names,
            "HMAC-SHA256 keys (16 bytes or more) to sign messages with: the first signs, all"
            " are accepted (rotate by putting a new key first). Empty: messages are not signed."),
    Setting("signing_max_age", None, _optional_positive,
            "Seconds a signed message stays acceptable (None: no limit); longer than your"
            " longest countdown."),
    # -- control (docs/control.md) --
    Setting("queue_rate_limits", {}, _rates,
            "Rate limits per queue, held across every worker: `{\"emails\": \"100/m\"}`"
            " (`N/s`, `N/m`, `N/h`)."),
    Setting("revoke_ttl", 7 * 86400.0, _positive(float),
            "Seconds a revocation is kept in the store (a revoked task whose message arrives"
            " later than that would run)."),
    Setting("unique_for", 3600.0, _positive(float),
            "Seconds a unique task's key is held at most, when the task or the call names no"
            " `unique_for`."),
    Setting("concurrency_recheck", 60.0, _positive(float),
            "Seconds a task waiting for a free concurrency-key slot sleeps at most; a finishing"
            " run wakes the next waiter at once, this bounds the wait after a crash."),
    # -- periodic tasks (conveyor beat) --
    Setting("beat_schedule", {}, _mapping,
            "Periodic entries for `conveyor beat`: `{\"cleanup\": {\"task\": \"shop.cleanup\","
            " \"schedule\": 3600}}` (seconds, a cron string or a schedule; optional `args`,"
            " `kwargs`, `options`, `catch_up`)."),
    Setting("beat_lease", 3.0, _positive(float),
            "Seconds a beat leads without renewing; when the leading beat dies another takes"
            " over within about this long."),
)
_BY_NAME = {s.name: s for s in SETTINGS}


class SettingsDict(TypedDict, total=False):
    """The keyword arguments of ``Conveyor(...)`` that are settings; see :data:`SETTINGS`."""

    serializer: str
    accept_content: tuple[str, ...] | list[str]
    default_queue: str
    result_ttl: float
    lease: float
    dead_letter_failures: bool
    track_started: bool
    delivery_limit: int
    events: bool
    send_sent_events: bool
    event_retention: int
    event_max_age: float
    heartbeat_interval: float
    routes: dict[str, Any]
    timezone: str
    max_message_size: int
    signing_keys: tuple[str, ...] | list[str]
    signing_max_age: float | None
    queue_rate_limits: dict[str, str]
    revoke_ttl: float
    unique_for: float
    concurrency_recheck: float
    # -- periodic tasks (conveyor beat) --
    beat_schedule: dict[str, Any]
    beat_lease: float


class Settings:
    """``app.conf``: every setting as an attribute and as a mapping item."""

    broker_url: str | None
    result_backend: str | None
    serializer: str
    accept_content: tuple[str, ...]
    default_queue: str
    result_ttl: float
    lease: float
    dead_letter_failures: bool
    track_started: bool
    delivery_limit: int
    events: bool
    send_sent_events: bool
    event_retention: int
    event_max_age: float
    heartbeat_interval: float
    routes: dict[str, Any]
    timezone: str
    max_message_size: int
    signing_keys: tuple[str, ...]
    signing_max_age: float | None
    queue_rate_limits: dict[str, str]
    revoke_ttl: float
    unique_for: float
    concurrency_recheck: float
    # -- periodic tasks (conveyor beat) --
    beat_schedule: dict[str, Any]
    beat_lease: float

    def __init__(self, given: Mapping[str, Any] | None = None,
                 environ: Mapping[str, str] | None = None) -> None:
        self._values.update({s.name: s.default for s in SETTINGS})
        self.update(from_environment(os.environ if environ is None else environ))
        self.update(given or {})

    @property
    def _values(self) -> dict[str, Any]:
        """The settings by name: the instance's own attributes, so reading ``conf.name`` is a
        plain attribute lookup (it is on every task's path)."""
        return self.__dict__

    def __getattr__(self, name: str) -> Any:  # only for names that are not settings
        raise AttributeError(_unknown(name))

    def __setattr__(self, name: str, value: Any) -> None:
        self[name] = value

    def __getitem__(self, name: str) -> Any:
        if name not in _BY_NAME:
            raise KeyError(_unknown(name))
        return self._values[name]

    def __setitem__(self, name: str, value: Any) -> None:
        self._values[name] = _convert(name, value)

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __contains__(self, name: object) -> bool:
        return name in self._values

    def keys(self) -> list[str]:
        return list(self._values)

    def items(self) -> list[tuple[str, Any]]:
        return list(self._values.items())

    def update(self, values: Mapping[str, Any]) -> None:
        """Set several settings; nothing is set if one name or value is wrong."""
        converted = {name: _convert(name, value) for name, value in values.items()}
        self._values.update(converted)

    def __repr__(self) -> str:
        from .urls import mask_url

        shown = {k: ("***" if k == "signing_keys" and v else
                     mask_url(v) if k.endswith(("_url", "_backend")) and v else v)
                 for k, v in self._values.items()}
        return f"Settings({shown!r})"


def _convert(name: str, value: Any) -> Any:
    setting = _BY_NAME.get(name)
    if setting is None:
        raise ConfigurationError(_unknown(name))
    try:
        return setting.convert(value)
    except (TypeError, ValueError) as exc:
        raise ConfigurationError(f"setting {name}: {exc}") from None


def _unknown(name: str) -> str:
    import difflib  # only for an error's hint

    near = difflib.get_close_matches(name, list(_BY_NAME), n=1)
    hint = f"; did you mean {near[0]!r}?" if near else ""
    return f"unknown setting {name!r}{hint} (known: {', '.join(_BY_NAME)})"


def from_environment(environ: Mapping[str, str]) -> dict[str, str]:
    """The settings named by ``CONVEYOR_<NAME>`` variables (unconverted)."""
    found = {}
    for setting in SETTINGS:
        variable = setting.env or ENV_PREFIX + setting.name.upper()
        if variable in environ:
            found[setting.name] = environ[variable]
    return found


def from_object(source: object | str, namespace: str | None = None) -> dict[str, Any]:
    """Settings from a module, a dotted path to one, a class or a mapping.

    Names are matched case-insensitively; with ``namespace="CONVEYOR"`` only names starting with
    ``CONVEYOR_`` are read (the prefix removed), as Django settings modules hold many others.
    Other names are ignored, so a settings module may hold anything else.
    """
    if isinstance(source, str):  # "pkg.module", or "pkg.module:attribute" (django.conf:settings)
        module, _, attribute = source.partition(":")
        source = importlib.import_module(module)
        if attribute:
            source = getattr(source, attribute)
    items = source.items() if isinstance(source, Mapping) else (
        (name, getattr(source, name)) for name in dir(source) if not name.startswith("_"))
    prefix = f"{namespace.upper()}_" if namespace else ""
    found = {}
    for name, value in items:
        key = str(name)
        if prefix and not key.upper().startswith(prefix):
            continue
        key = key[len(prefix):].lower()
        if key in _BY_NAME:
            found[key] = value
    return found


def settings_table() -> str:
    """Every setting as a Markdown table row: name, environment variable, default, meaning."""
    rows = ["| setting | environment | default | meaning |", "| --- | --- | --- | --- |"]
    for s in SETTINGS:
        variable = s.env or ENV_PREFIX + s.name.upper()
        rows.append(f"| `{s.name}` | `{variable}` | `{s.default!r}` | {s.doc} |")
    return "\n".join(rows)
