"""The worker: consume, execute, record, settle; and the pools that run it."""

from .worker import Worker

__all__ = ["Worker"]
