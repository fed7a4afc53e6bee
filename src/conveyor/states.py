"""Task states. ``UNKNOWN`` (an id never sent, or whose record expired) differs from ``PENDING``
(queued, not started), which Celery conflates."""

from __future__ import annotations

from enum import StrEnum


class State(StrEnum):
    """Where a task is in its life. SUCCESS, FAILURE, REVOKED and EXPIRED are final."""

    UNKNOWN = "UNKNOWN"
    PENDING = "PENDING"
    STARTED = "STARTED"
    RETRY = "RETRY"
    SUCCESS = "SUCCESS"
    FAILURE = "FAILURE"
    REVOKED = "REVOKED"
    EXPIRED = "EXPIRED"

    @property
    def final(self) -> bool:
        """True for states a task never leaves."""
        return self in FINAL_STATES


FINAL_STATES = frozenset({State.SUCCESS, State.FAILURE, State.REVOKED, State.EXPIRED})
