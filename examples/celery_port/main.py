"""The web app of the tutorial, ported: POST /tasks queues create_task, GET /tasks/{id} shows
its status. Run: ``conveyor worker --app=worker.celery --loglevel=info`` (was ``celery
--app=worker.celery worker --loglevel=info``) and ``uvicorn main:app``, from this directory."""

from __future__ import annotations

from typing import Any

from fastapi import Body, FastAPI
from fastapi.responses import JSONResponse

from conveyor.contrib.status import task_status

from .worker import celery, create_task

app = FastAPI()


@app.post("/tasks", status_code=201)
def run_task(payload: dict[str, Any] = Body(...)) -> JSONResponse:  # noqa: B008
    task = create_task.delay(int(payload["type"]))
    return JSONResponse({"task_id": task.id}, status_code=201)


@app.get("/tasks/{task_id}")
def get_status(task_id: str) -> JSONResponse:
    # was: task_result = AsyncResult(task_id)  (Celery's current app; Conveyor names the app)
    task_result = celery.AsyncResult(task_id)
    if task_result.failed():  # an exception is not JSON: send its type and message
        found = task_status(celery, task_id)
        return JSONResponse({"task_id": task_id, "task_status": found["state"],
                             "task_result": found["error"]})
    return JSONResponse({"task_id": task_id, "task_status": task_result.status,
                         "task_result": task_result.result})
