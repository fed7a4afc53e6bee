"""The worker: consume, execute, record, settle; and the pools that run it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .worker import Worker

__all__ = ["Worker"]


def __getattr__(name: str) -> Any:
    # Imported on first use: the process-pool supervisor imports this package but never runs
    # a Worker itself, and stays small without asyncio and the stores.
    if name == "Worker":
        from .worker import Worker

        return Worker
    raise AttributeError(f"module 'conveyor.worker' has no attribute {name!r}")
