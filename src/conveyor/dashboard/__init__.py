"""The built-in web dashboard: ``conveyor dashboard -A module:app``.

Live pages of workers, queues and tasks, fed by the app's events and kept in a task index of
its own (a SQLite file) so history survives restarts; actions (revoke, retry, dead-letter
replay and purge, queue purge) behind confirmation, login and CSRF checks; ``/metrics`` for
Prometheus. Needs the ``dashboard`` extra (starlette, uvicorn, jinja2); see docs/monitoring.md.

Importing this package imports none of those: :func:`serve` and :func:`build` do.
"""

from __future__ import annotations

from .server import build, default_index_path, serve

__all__ = ["build", "default_index_path", "serve"]
