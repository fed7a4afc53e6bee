"""Rates as users write them: ``"100/m"`` is at most 100 starts in any minute.

``N/s``, ``N/m`` and ``N/h`` (``sec``/``min``/``hour`` and their plurals too); a bare ``N``
means per second, as in Celery. ``"off"`` (or ``"0"``) means no limit where a limit may be
switched off at run time.
"""

from __future__ import annotations

from dataclasses import dataclass

from .errors import ConfigurationError

_UNITS = {"s": 1.0, "sec": 1.0, "second": 1.0, "m": 60.0, "min": 60.0, "minute": 60.0,
          "h": 3600.0, "hour": 3600.0}
OFF = ("off", "0", "none")


@dataclass(frozen=True, slots=True)
class Rate:
    """At most ``limit`` starts in any window of ``per`` seconds."""

    limit: int
    per: float

    def __str__(self) -> str:
        unit = {1.0: "s", 60.0: "m", 3600.0: "h"}.get(self.per)
        return f"{self.limit}/{unit}" if unit else f"{self.limit}/{self.per:g}s"


def parse_rate(text: str | Rate) -> Rate:
    """``"100/m"`` -> ``Rate(100, 60.0)``; ConfigurationError naming what is wrong."""
    if isinstance(text, Rate):
        return text
    raw = str(text).strip().lower()
    count, _, unit = raw.partition("/")
    try:
        limit = int(count)
    except ValueError:
        raise ConfigurationError(
            f"rate {text!r}: expected N/s, N/m or N/h with N a whole number") from None
    per = _UNITS.get(unit.rstrip("s") if unit not in _UNITS else unit) if unit else 1.0
    if per is None:
        raise ConfigurationError(f"rate {text!r}: unknown unit {unit!r} (use s, m or h)")
    if limit < 1:
        raise ConfigurationError(f"rate {text!r}: the count must be at least 1")
    return Rate(limit, per)


def parse_optional_rate(text: str | Rate | None) -> Rate | None:
    """As :func:`parse_rate`, with None, ``"off"``, ``"0"`` and ``"none"`` meaning no limit."""
    if text is None or (isinstance(text, str) and text.strip().lower() in OFF):
        return None
    return parse_rate(text)
