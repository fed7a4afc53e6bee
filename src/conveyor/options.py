"""Task options, the retry policy that reads them, and per-call publish options."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from datetime import timedelta
from typing import Any, TypedDict

from .errors import ConfigurationError, Retry
from .rates import parse_optional_rate


class TaskOptionsDict(TypedDict, total=False):
    """Keyword options accepted by ``@app.task(...)``; see :class:`TaskOptions`."""

    name: str
    queue: str
    priority: int
    retries: int
    max_retries: int
    retry_backoff: bool | float
    retry_backoff_max: float
    retry_jitter: bool
    default_retry_delay: float
    autoretry_for: tuple[type[BaseException], ...]
    time_limit: float | timedelta | None
    expires: float | None
    ignore_result: bool
    track_started: bool
    delivery_limit: int
    retry_kwargs: dict[str, float]
    soft_time_limit: float | timedelta | None
    rate_limit: str | None
    unique_key: Callable[..., str] | bool | None
    unique_for: float | timedelta | None
    concurrency_key: Callable[..., Any] | None
    concurrency_limit: int | None


@dataclass(frozen=True, slots=True)
class TaskOptions:
    """How a task is routed and retried.

    ``max_retries`` (alias ``retries``, default 3) bounds retries after the first run, whether
    asked for by ``self.retry()`` or automatic. Automatic retries happen for ``autoretry_for``
    exception types; giving ``retries``/``max_retries`` without ``autoretry_for`` retries any
    ``Exception``. With ``retry_backoff``
    the n-th retry waits ``base * 2**n`` seconds (``base`` = 1 when True, else the given number),
    capped at ``retry_backoff_max``; ``retry_jitter`` draws uniformly from [0, that delay] so
    retrying workers do not stampede. Without backoff a retry waits ``default_retry_delay``.
    ``autoretry_for`` lists exception types that trigger a retry by themselves.
    ``time_limit`` (seconds) stops the task; ``expires`` (seconds after publish) skips it if it has
    not started by then. ``track_started`` and ``delivery_limit`` override the app's settings of
    those names for this task (None: the app's).

    Control (see the guide's Control page): ``soft_time_limit`` raises SoftTimeLimitExceeded
    inside the task, which may catch it to clean up before ``time_limit``. ``rate_limit``
    (``"100/m"``, ``"5/s"``, ``"10/h"``) holds the task's starts under that rate across every
    worker. ``unique_key`` (a function of the task's arguments returning a key, or True for
    the task name and arguments) makes a second enqueue while the first is pending or running
    return the first one's result, for at most ``unique_for`` seconds. ``concurrency_key`` (a
    function of the arguments) with ``concurrency_limit`` lets at most that many runs with the
    same key be active at once across every worker.
    """

    queue: str = "default"
    priority: int = 0
    max_retries: int = 3
    retry_backoff: bool | float = False
    retry_backoff_max: float = 600.0
    retry_jitter: bool = True
    default_retry_delay: float = 3.0
    autoretry_for: tuple[type[BaseException], ...] = field(default_factory=tuple)
    time_limit: float | None = None
    expires: float | None = None
    ignore_result: bool = False
    track_started: bool | None = None
    delivery_limit: int | None = None
    soft_time_limit: float | None = None
    rate_limit: str | None = None
    unique_key: Callable[..., str] | bool | None = None
    unique_for: float | None = None
    concurrency_key: Callable[..., Any] | None = None
    concurrency_limit: int | None = None

    def retry_delay(self, retries: int, rng: random.Random | None = None) -> float:
        """Seconds to wait before retry number ``retries + 1`` (``retries`` done so far)."""
        if not self.retry_backoff:
            return self.default_retry_delay
        base = 1.0 if self.retry_backoff is True else float(self.retry_backoff)
        delay = min(base * (2**retries), self.retry_backoff_max)
        return (rng or random).uniform(0, delay) if self.retry_jitter else delay

    def retry_countdown(self, exc: BaseException, retries: int) -> float | None:
        """Seconds until the next run if ``exc`` after ``retries`` retries earns one, else None."""
        if isinstance(exc, Retry):
            limit = self.max_retries if exc.max_retries is None else exc.max_retries
            if retries >= limit:
                return None
            return self.retry_delay(retries) if exc.countdown is None else exc.countdown
        if isinstance(exc, self.autoretry_for) and retries < self.max_retries:
            return self.retry_delay(retries)
        return None


#: Names ``@app.task`` accepts besides the TaskOptions fields.
_ALIASES = ("name", "retries", "retry_kwargs")


def build_options(default_queue: str, given: TaskOptionsDict) -> TaskOptions:
    """TaskOptions from decorator keywords (``retries`` is an alias of ``max_retries``;
    Celery's ``retry_kwargs={"max_retries": N, "countdown": S}`` is accepted too)."""
    values: dict[str, Any] = {k: v for k, v in given.items() if k != "name"}
    _check_names(values)
    celery = values.pop("retry_kwargs", None) or {}
    _check_retry_kwargs(celery)
    if "countdown" in celery:
        values.setdefault("default_retry_delay", float(celery["countdown"]))
    if "max_retries" in celery:
        values.setdefault("max_retries", int(celery["max_retries"]))
    if "retries" in values:
        values.setdefault("max_retries", values.pop("retries"))
    if "max_retries" in values and "autoretry_for" not in values:
        values["autoretry_for"] = (Exception,)
    values.setdefault("queue", default_queue)
    priority = values.get("priority", 0)
    if not isinstance(priority, int) or not 0 <= priority <= 9:
        raise ConfigurationError(f"priority must be an int from 0 to 9, got {priority!r}")
    _check_control(values)
    return TaskOptions(**values)


def seconds(value: float | timedelta | None, name: str) -> float | None:
    """A duration given as seconds or a timedelta, as seconds; it must be positive."""
    if value is None:
        return None
    number = value.total_seconds() if isinstance(value, timedelta) else value
    if isinstance(number, bool) or not isinstance(number, int | float) or number <= 0:
        raise ConfigurationError(f"{name} must be a positive number of seconds or a timedelta,"
                                 f" got {value!r}")
    return float(number)


def _check_control(values: dict[str, Any]) -> None:
    """Durations to seconds; rate, unique and concurrency options checked together."""
    for name in ("time_limit", "soft_time_limit", "unique_for"):
        if name in values:
            values[name] = seconds(values[name], name)
    if values.get("rate_limit") is not None:
        parse_optional_rate(values["rate_limit"])
    key, limit = values.get("concurrency_key"), values.get("concurrency_limit")
    if (key is None) != (limit is None):
        raise ConfigurationError("concurrency_key and concurrency_limit go together: give both")
    if key is not None and not callable(key):
        raise ConfigurationError("concurrency_key must be a function of the task's arguments")
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int)
                              or limit < 1):
        raise ConfigurationError(f"concurrency_limit must be an int >= 1, got {limit!r}")
    unique = values.get("unique_key")
    if unique is not None and not (unique is True or unique is False or callable(unique)):
        raise ConfigurationError("unique_key must be a function of the task's arguments or True")


def _check_names(values: dict[str, Any]) -> None:
    known = {f.name for f in fields(TaskOptions)} | set(_ALIASES)
    unknown = sorted(set(values) - known)
    if unknown:
        import difflib  # only for an error's hint

        hints = [f"{name!r} (did you mean {near[0]!r}?)" if near else repr(name)
                 for name in unknown
                 for near in [difflib.get_close_matches(name, sorted(known), n=1)]]
        raise ConfigurationError(
            f"unknown task option {', '.join(hints)}; valid options: {', '.join(sorted(known))}")


def _check_retry_kwargs(given: dict[str, Any]) -> None:
    unknown = sorted(set(given) - {"max_retries", "countdown"})
    if unknown:
        raise ConfigurationError(
            f"retry_kwargs takes max_retries and countdown, not {', '.join(map(repr, unknown))}")
