"""Checking cron expressions field by field, and building them from Celery-style crontab fields.

Errors name the field and the value, since croniter's own messages quote a whole expression.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from croniter import CroniterError, croniter

from ..errors import ConfigurationError

CRON_FIELDS = ("minute", "hour", "day of month", "month", "day of week")
CRONTAB_FIELDS = ("minute", "hour", "day_of_month", "month_of_year", "day_of_week")
_EXPECTED = ("0-59", "0-23", "1-31 or L", "1-12 or jan-dec", "0-7 or sun-sat")
ALIASES = {
    "@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *", "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0", "@daily": "0 0 * * *", "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
# croniter's H (hashed) and R (random) values: a random one would differ between beat
# processes, and both would break "every beat computes the same ticks". Letters inside
# names (thu, fri, mar) are not matched.
_UNSEEDED = re.compile(r"(?<![a-z])[hr](?![a-z])")
_LONG_NAME = re.compile(r"[a-z]{4,}")

CrontabField = int | str | Iterable[int | str]


def normalize(expression: str) -> str:
    """A checked five-field expression, lower case, single-spaced, with aliases expanded.

    Raises ConfigurationError naming the first bad field.
    """
    if not isinstance(expression, str):
        raise ConfigurationError(
            f"cron expression must be a string, not {type(expression).__name__}")
    text = " ".join(expression.lower().split())
    text = ALIASES.get(text, text)
    fields = text.split(" ")
    if len(fields) != len(CRON_FIELDS):
        raise ConfigurationError(
            f"cron expression {expression!r} has {len(fields) if text else 0} fields; "
            "expected 5: minute hour day-of-month month day-of-week")
    for index, value in enumerate(fields):
        check_field(index, value, CRON_FIELDS[index], f"cron expression {expression!r}")
    return text


def check_field(index: int, value: str, label: str, where: str) -> None:
    """Refuse a bad value for field number ``index`` (0 is the minute), naming it."""
    if _UNSEEDED.search(value):
        raise ConfigurationError(
            f"{label} field {value!r} in {where}: hashed (H) and random (R) values are not "
            "supported, since every beat process must compute the same ticks")
    probe = ["*"] * len(CRON_FIELDS)
    probe[index] = value
    try:
        croniter.expand(" ".join(probe))
    except (CroniterError, ValueError) as exc:
        raise ConfigurationError(
            f"invalid {label} field {value!r} in {where}: expected {_EXPECTED[index]}, "
            "with lists (1,15), ranges (1-5) and steps (*/15)") from exc


def crontab_field(index: int, value: CrontabField) -> str:
    """One crontab field as cron text: ``0``, ``"*/15"``, ``"mon-fri"``, ``{0, 30}``."""
    name = CRONTAB_FIELDS[index]
    text = _field_text(name, value)
    check_field(index, text, name, f"crontab({name}={value!r})")
    return text


def _field_text(name: str, value: CrontabField) -> str:
    if isinstance(value, bool):
        raise ConfigurationError(
            f"crontab {name} must be an int, a string or an iterable, not bool")
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        # Celery takes whole names ("sunday"); cron takes their first three letters
        text = _LONG_NAME.sub(lambda word: word.group()[:3], "".join(value.lower().split()))
        if not text:
            raise ConfigurationError(f"crontab {name} is empty")
        return text
    return _list_text(name, value)


def _list_text(name: str, value: Iterable[int | str]) -> str:
    if not isinstance(value, Iterable):
        raise ConfigurationError(
            f"crontab {name} must be an int, a string or an iterable, not {type(value).__name__}")
    items = list(value)
    if not items or not all(isinstance(i, int | str) and not isinstance(i, bool) for i in items):
        raise ConfigurationError(f"crontab {name} must list ints or strings, got {items!r}")
    if all(isinstance(i, int) for i in items):
        items = sorted(set(items))  # {30, 0} and [0, 30] are one definition: one key
    return ",".join(_field_text(name, item) for item in items)
