"""Remote control and inspection: ``app.control`` (revoke, rate limits, shutdown, ping) and
``app.control.inspect()`` (what workers run, what is scheduled, registered tasks, statistics);
``conveyor control|inspect|revoke`` on the command line. See docs/control.md.

Names are imported on first use: the worker-side middleware imports this package's command
definitions without the API on top.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .api import Control
    from .inspect import Inspect

__all__ = ["Control", "Inspect"]


def __getattr__(name: str) -> Any:
    if name == "Control":
        from .api import Control

        return Control
    if name == "Inspect":
        from .inspect import Inspect

        return Inspect
    raise AttributeError(f"module 'conveyor.control' has no attribute {name!r}")
