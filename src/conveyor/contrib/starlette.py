"""Starlette: producer connections in the app's lifespan and a ready status route.

```python
from starlette.applications import Starlette
from conveyor.contrib.starlette import lifespan, status_routes

web = Starlette(routes=[*status_routes(app)], lifespan=lifespan(app))
```

``GET /tasks/{task_id}`` answers the task's state, result or error as JSON (see
:mod:`conveyor.contrib.status`); ``lifespan(app)`` opens the stores on start (failing the start
when they cannot be reached) and closes them on shutdown, and puts the app in the lifespan
state as ``request.state.conveyor``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import TYPE_CHECKING, Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from .status import atask_status

if TYPE_CHECKING:
    from ..app import Conveyor

Lifespan = Callable[[Any], AbstractAsyncContextManager[Any]]


def lifespan(app: Conveyor, inner: Lifespan | None = None) -> Lifespan:
    """A lifespan that opens ``app``'s broker and result backend before the first request and
    closes them at shutdown; ``inner`` is your own lifespan, run inside it (its state is merged
    with ``{"conveyor": app}``)."""

    @asynccontextmanager
    async def run(web_app: Any) -> AsyncIterator[dict[str, Any]]:
        await open_stores(app)
        try:
            if inner is None:
                yield {"conveyor": app}
            else:
                async with inner(web_app) as state:
                    yield {**(state or {}), "conveyor": app}
        finally:
            await app.aclose()

    return run


async def open_stores(app: Conveyor) -> None:
    """Open the broker and the result backend now, with one round trip to the backend, so a
    store that cannot be reached fails the application's start instead of its first request."""
    app.broker  # noqa: B018  (opening is the point)
    await app.backend.aget("conveyor-startup-check")


def status_endpoint(app: Conveyor, *, traceback: bool = False,
                    ) -> Callable[[Request], Any]:
    """A Starlette endpoint answering ``{task_id}``'s status as JSON."""

    async def endpoint(request: Request) -> JSONResponse:
        task_id = request.path_params["task_id"]
        return JSONResponse(await atask_status(app, task_id, traceback=traceback))

    return endpoint


def status_routes(app: Conveyor, path: str = "/tasks/{task_id}", *,
                  traceback: bool = False) -> list[Route]:
    """The status route, ``GET /tasks/{task_id}``, to add to your routes."""
    return [Route(path, status_endpoint(app, traceback=traceback), methods=["GET"],
                  name="conveyor-task-status")]


def status_app(app: Conveyor, *, traceback: bool = False) -> Starlette:
    """A small ASGI app with only the status route, to ``Mount("/", ...)`` anywhere."""
    return Starlette(routes=status_routes(app, traceback=traceback), lifespan=lifespan(app))
