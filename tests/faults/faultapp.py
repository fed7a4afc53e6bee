"""The tasks of the fault matrix, run by real worker processes.

The broker comes from ``CONVEYOR_BROKER_URL`` and every run is written to the ledger named by
``FAULTS_LEDGER`` (see :mod:`tests.faults.ledger`).
"""

from __future__ import annotations

import ctypes
import os
import signal
import time
from typing import Any

from conveyor import Conveyor, Task
from tests.faults import ledger

app = Conveyor("faults")


def _ledger() -> str:
    return os.environ["FAULTS_LEDGER"]


@app.task(bind=True)
def work(self: Task[Any, Any], seconds: float) -> float:
    """Sleep ``seconds`` between a start and an end row in the ledger."""
    ledger.append(_ledger(), self.request.id, self.request.attempt, "start")
    time.sleep(seconds)
    ledger.append(_ledger(), self.request.id, self.request.attempt, "end")
    return seconds


@app.task(bind=True, delivery_limit=2)
def kills_itself(self: Task[Any, Any]) -> None:
    ledger.append(_ledger(), self.request.id, self.request.attempt, "start")
    os.kill(os.getpid(), signal.SIGKILL)


@app.task(bind=True, delivery_limit=2)
def segfaults(self: Task[Any, Any]) -> None:
    ledger.append(_ledger(), self.request.id, self.request.attempt, "start")
    ctypes.string_at(0)  # reads address 0: SIGSEGV


@app.task(bind=True, delivery_limit=2)
def hogs_memory(self: Task[Any, Any]) -> int:
    """Asks for more than the worker's address-space limit (``prlimit --as``) allows."""
    ledger.append(_ledger(), self.request.id, self.request.attempt, "start")
    block = bytearray(4 << 30)
    return len(block)
