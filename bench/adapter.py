"""The interface each library module offers the driver."""

from __future__ import annotations

import os
import sys
from typing import Any


class NotAvailable(Exception):
    """The library has no API for this scenario (reported as n/a)."""


def bindir() -> str:
    """The directory of this interpreter's console scripts (the bench venv's bin/)."""
    return os.path.dirname(sys.executable)


def script(name: str) -> str:
    return os.path.join(bindir(), name)


class Adapter:
    """A library as the driver sees it. Subclasses send its tasks and start its workers.

    ``send_*`` methods send tasks whose body calls :func:`bench.common.bump` (``count``) or
    :func:`bench.common.record_latency` (``lat``).
    """

    name = "?"
    #: What the library records per task in this benchmark (for the report).
    stores: str = ""
    #: Which bulk form ``send_bulk`` uses (for the report).
    bulk_api: str = "n/a"
    #: Key patterns this library writes besides those containing the namespace.
    extra_key_patterns: tuple[str, ...] = ()

    def send_single(self, n: int) -> None:
        """``n`` individual sends of ``count``, one after another."""
        raise NotImplementedError

    def send_bulk(self, n: int) -> None:
        """``n`` sends of ``count`` through the library's bulk form."""
        raise NotAvailable

    def prefill(self, n: int) -> None:
        """Queue ``n`` ``count`` tasks as fast as the library allows (not timed)."""
        try:
            self.send_bulk(n)
        except NotAvailable:
            self.send_single(n)

    def send_latency(self, sent: float) -> None:
        """One ``lat(sent)`` task."""
        raise NotImplementedError

    def worker_argvs(self) -> list[list[str]]:
        """Command lines of the worker processes (two task slots in all)."""
        raise NotImplementedError

    def worker_env(self) -> dict[str, str]:
        return {}

    # -- the workflows scenario (group and chord of ``wadd`` tasks, callback ``wsum``) ------
    #: Whether the library has groups and chords to measure.
    workflows = False

    def send_group(self, n: int) -> Any:
        """A group of ``wadd(i, i)`` for i < n; returns the library's group result."""
        raise NotAvailable

    def send_chord(self, n: int) -> Any:
        """A chord of ``wadd(i, i)`` for i < n with callback ``wsum``; returns its result."""
        raise NotAvailable

    def wait_result(self, handle: Any, timeout: float) -> Any:
        """The value of a group or chord result, waited for with the library's own API."""
        raise NotAvailable

    def verify(self, n: int) -> dict[str, Any]:
        """After the end-to-end run: what the library recorded (e.g. results found)."""
        return {}

    def close(self) -> None:
        pass
