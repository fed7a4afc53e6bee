"""FastAPI: the lifespan, dependencies and a ready router for task status.

```python
from fastapi import FastAPI
from conveyor.contrib.fastapi import ConveyorApp, lifespan, status_router

web = FastAPI(lifespan=lifespan(app))
web.include_router(status_router(app))             # GET /tasks/{task_id}

@web.post("/signup", status_code=202)
async def signup(email: str, conveyor: ConveyorApp) -> dict[str, str]:
    result = await send_email.adelay(email, "Welcome!")
    return {"task_id": result.id}
```

The router answers ``{"id", "state", "ready", "result", "error", "date_done", "task"}``, every
value JSON-safe; a failed task has ``error: {"type", "message"}`` and ``state: "FAILURE"``, an
id never sent ``state: "UNKNOWN"`` (see :mod:`conveyor.contrib.status`).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Request

from ..app import Conveyor
from ..result import AsyncResult
from .starlette import Lifespan, open_stores, status_app, status_routes
from .starlette import lifespan as _lifespan
from .status import atask_status

__all__ = ["ConveyorApp", "TaskResult", "current_conveyor", "lifespan", "open_stores",
           "result_of", "status_app", "status_router", "status_routes"]


def lifespan(app: Conveyor, inner: Lifespan | None = None) -> Lifespan:
    """Open ``app``'s stores when FastAPI starts and close them when it stops; ``inner`` is
    your own lifespan, run inside. ``FastAPI(lifespan=lifespan(app))``."""
    return _lifespan(app, inner)


def current_conveyor(request: Request) -> Conveyor:
    """The dependency behind :data:`ConveyorApp`: the app the lifespan put in its state."""
    found = getattr(request.state, "conveyor", None)
    if found is None:
        raise RuntimeError("no Conveyor app in the request state: create the FastAPI app"
                           " with lifespan=conveyor.contrib.fastapi.lifespan(app)")
    if not isinstance(found, Conveyor):
        raise TypeError(f"request.state.conveyor is {type(found).__name__}, not a Conveyor")
    return found


#: ``conveyor: ConveyorApp`` in a handler's parameters receives the app.
ConveyorApp = Annotated[Conveyor, Depends(current_conveyor)]


def result_of(task_id: str, conveyor: ConveyorApp) -> AsyncResult[Any]:
    """The dependency behind :data:`TaskResult`: the result handle of the path's ``task_id``."""
    return conveyor.AsyncResult(task_id)


#: ``result: TaskResult`` in a handler of a path with ``{task_id}`` receives its AsyncResult.
TaskResult = Annotated[AsyncResult[Any], Depends(result_of)]


def status_router(app: Conveyor, *, prefix: str = "/tasks", traceback: bool = False,
                  unknown_404: bool = False, tags: list[str] | None = None) -> APIRouter:
    """A router with ``GET {prefix}/{task_id}``: the task's state and result or error, as
    JSON. ``traceback`` adds failures' tracebacks (they may show code and paths: keep it off
    for public APIs); ``unknown_404`` answers 404 for an id with no record."""
    router = APIRouter(prefix=prefix, tags=list(tags or ["tasks"]))

    @router.get("/{task_id}", name="conveyor-task-status")
    async def task_status(task_id: str) -> dict[str, Any]:
        found = await atask_status(app, task_id, traceback=traceback)
        if unknown_404 and found["state"] == "UNKNOWN":
            raise HTTPException(404, f"no task {task_id}")
        return found

    return router
