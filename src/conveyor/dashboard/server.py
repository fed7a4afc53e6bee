"""Building and serving the dashboard (``conveyor dashboard``)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import ConfigurationError
from ..urls import mask_url

if TYPE_CHECKING:
    from collections.abc import Mapping

    from starlette.applications import Starlette

    from ..app import Conveyor


def default_index_path(app: Conveyor) -> Path:
    """``$XDG_STATE_HOME/conveyor/dashboard-<app>-<store digest>.db`` (``~/.local/state``
    without it): one index per app and store, kept across restarts."""
    base = Path(os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state")
    digest = hashlib.sha256(mask_url(app.backend_url).encode()).hexdigest()[:10]
    return base / "conveyor" / f"dashboard-{app.name}-{digest}.db"


def _need_extra() -> None:
    try:
        import jinja2  # noqa: F401
        import starlette  # noqa: F401
    except ImportError as exc:
        raise ConfigurationError(
            f"the dashboard needs {exc.name}; install conveyor-tasks[dashboard]") from exc


def build(app: Conveyor, db: str | Path | None = None, *,
          environ: Mapping[str, str] | None = None, keep: int = 250_000) -> Starlette:
    """The dashboard of ``app`` as an ASGI app (mount it, or serve it with :func:`serve`).

    Login comes from ``environ`` (default: the process environment); see
    :mod:`conveyor.dashboard.security`.
    """
    _need_extra()
    from .index import TaskIndex
    from .security import Auth
    from .state import Dashboard
    from .web import create_app

    auth = Auth.from_environment(os.environ if environ is None else environ)
    index = TaskIndex(db or default_index_path(app), mask_url(app.backend_url), keep)
    return create_app(Dashboard(app, index, auth))


def serve(app: Conveyor, host: str = "127.0.0.1", port: int = 5555,
          db: str | Path | None = None, log_level: str = "warning") -> None:
    """Serve the dashboard until interrupted; refuses a non-loopback ``host`` without login."""
    _need_extra()
    import uvicorn

    from .security import Auth, check_bind

    check_bind(host, Auth.from_environment(os.environ))
    web = build(app, db)
    uvicorn.run(web, host=host, port=port, log_level=log_level, access_log=False,
                lifespan="on")
