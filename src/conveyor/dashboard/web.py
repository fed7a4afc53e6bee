"""The Starlette application: pages, the live stream, JSON, actions and ``/metrics``.

Pages are rendered on the server from Jinja2 templates (autoescaped) and kept live by a small
script listening to ``/live``; every route is read-only except the POSTs under ``/actions/``.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode

from jinja2 import Environment, PackageLoader, select_autoescape
from markupsafe import Markup
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import (
    HTMLResponse,
    JSONResponse,
    PlainTextResponse,
    RedirectResponse,
    Response,
    StreamingResponse,
)
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from ..errors import ConveyorError
from ..result import AsyncResult
from . import charts
from .guard import Guard
from .index import STATES, TaskFilter
from .live import Live
from .security import CSRF_FIELD, SESSION_COOKIE, csrf_ok
from .state import Dashboard

STATIC = Path(__file__).parent / "static"
PAGE_SIZE = 50

_env = Environment(loader=PackageLoader("conveyor.dashboard", "templates"),
                   autoescape=select_autoescape(["html"]), trim_blocks=True, lstrip_blocks=True)


def _when(ts: float | None) -> Markup:
    """A time as ``<time>``: UTC in the page, turned into local time by the script."""
    if not ts:
        return Markup("")
    iso = dt.datetime.fromtimestamp(ts, dt.UTC).isoformat(timespec="milliseconds")
    text = dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    return Markup('<time datetime="{}" data-ts="{}">{}</time>').format(iso, ts, text)


def _seconds(value: float | None) -> str:
    if value is None:
        return ""
    return f"{value * 1000:.1f} ms" if value < 1 else f"{value:.2f} s"


def _detail(value: object) -> str:
    return f"{value:.3f}" if isinstance(value, float) else str(value)


_env.filters.update(when=_when, seconds=_seconds, detail=_detail)


def render(request: Request, name: str, status: int = 200, **context: Any) -> HTMLResponse:
    dash: Dashboard = request.app.state.dash
    page = _env.get_template(name).render(
        request=request, dash=dash, csrf=request.scope["state"]["csrf"],
        notice=request.query_params.get("notice", ""), path=request.url.path, **context)
    return HTMLResponse(page, status)


async def _form(request: Request) -> dict[str, str]:
    """A small urlencoded form (the only kind the pages send); anything else counts as empty."""
    if not request.headers.get("content-type", "").startswith(
            "application/x-www-form-urlencoded"):
        return {}
    body = await request.body()
    if len(body) > 65536:
        return {}
    return {k: v[0] for k, v in parse_qs(body.decode("utf-8", "replace")).items()}


def _dash(request: Request) -> Dashboard:
    dash: Dashboard = request.app.state.dash
    return dash


# -- pages --------------------------------------------------------------------------------
async def overview(request: Request) -> Response:
    dash = _dash(request)
    return render(request, "overview.html", figures=await dash.overview(),
                  charts=_charts(dash))


async def charts_fragment(request: Request) -> Response:
    return render(request, "charts.html", charts=_charts(_dash(request)))


def _charts(dash: Dashboard) -> list[Markup]:
    s = dash.activity.series(dash.now)
    return [Markup(c) for c in (
        charts.chart("Tasks finished per minute", [("finished", s["finished"])], bars=True),
        charts.chart("Failures per minute", [("failed", s["failed"])], bars=True, tone=2),
        charts.chart("Runtime", [("p50", s["runtime_p50"]), ("p95", s["runtime_p95"]),
                                 ("p99", s["runtime_p99"])], unit="s"),
        charts.chart("Queue wait (send to start)", [("p50", s["wait_p50"]),
                                                    ("p95", s["wait_p95"])], unit="s"))]


async def workers(request: Request) -> Response:
    dash = _dash(request)
    return render(request, "workers.html", workers=dash.workers(), now=dash.now)


async def queues(request: Request) -> Response:
    dash = _dash(request)
    return render(request, "queues.html", queues=await dash.queues())


def _filter(request: Request) -> TaskFilter:
    q = request.query_params
    return TaskFilter(name=q.get("name", "").strip(), state=q.get("state", "").strip().upper(),
                      worker=q.get("worker", "").strip(), id=q.get("id", "").strip(),
                      since=_time(q.get("since", "")), until=_time(q.get("until", "")))


def _time(text: str) -> float | None:
    """``YYYY-MM-DDTHH:MM`` (UTC, as a datetime-local field sends it) or epoch seconds."""
    text = text.strip()
    if not text:
        return None
    try:
        return float(text)
    except ValueError:
        pass
    try:
        when = dt.datetime.fromisoformat(text)
    except ValueError as exc:
        raise ConveyorError(f"not a time: {text!r} (use YYYY-MM-DDTHH:MM, UTC)") from exc
    return (when if when.tzinfo else when.replace(tzinfo=dt.UTC)).timestamp()


def _before(request: Request) -> int | None:
    text = request.query_params.get("before", "")
    return int(text) if text.isdigit() else None


async def tasks(request: Request) -> Response:
    dash = _dash(request)
    try:
        where = _filter(request)
    except ConveyorError as exc:
        return render(request, "error.html", 400, message=str(exc))
    before = _before(request)
    page = await asyncio.to_thread(dash.index.page, where, before, PAGE_SIZE)
    params = {k: v for k, v in request.query_params.items() if k != "before" and v}
    older = (f"/tasks?{urlencode({**params, 'before': page.next_before})}"
             if page.next_before else "")
    newest = f"/tasks?{urlencode(params)}"
    return render(request, "tasks.html", page=page, where=where, before=before, older=older,
                  newest=newest,
                  states=STATES, names=sorted(dash.follower.names),
                  since=request.query_params.get("since", ""),
                  until=request.query_params.get("until", ""))


async def task(request: Request) -> Response:
    dash = _dash(request)
    task_id = request.path_params["task_id"]
    found = await _task(dash, task_id)
    if found is None:
        return render(request, "error.html", 404, message=f"no task {task_id} is known")
    name = "task_detail.html" if request.query_params.get("fragment") else "task.html"
    return render(request, name, **found)


async def _task(dash: Dashboard, task_id: str) -> dict[str, Any] | None:
    row = await asyncio.to_thread(dash.index.task, task_id)
    try:
        outcome = await asyncio.to_thread(AsyncResult(task_id, dash.app).outcome)
    except ConveyorError as exc:
        outcome, problem = None, str(exc)
    else:
        problem = ""
    if row is None and outcome is None:
        return None
    children = await asyncio.to_thread(dash.index.children, task_id)
    return {"task_id": task_id, "row": row, "outcome": outcome, "problem": problem,
            "children": children}


# -- actions ------------------------------------------------------------------------------
async def confirm(request: Request) -> Response:
    dash = _dash(request)
    action = dash.actions.get(request.path_params["action"])
    if action is None:
        return render(request, "error.html", 404, message="no such action here")
    q = request.query_params
    target = {"id": q.get("id", ""), "queue": q.get("queue", "")}
    of = f" of {target['queue']}" if target["queue"] else ""
    return render(request, "confirm.html", action=action,
                  question=action.question.format(of=of, **target), target=target,
                  back=_safe_next(q.get("next", "/")))


async def act(request: Request) -> Response:
    dash = _dash(request)
    action = dash.actions.get(request.path_params["action"])
    form = await _form(request)
    if not csrf_ok(request.scope["state"]["csrf"], form.get(CSRF_FIELD, "")) or (
            not _same_origin(request)):
        return render(request, "error.html", 403,
                      message="the form is stale or came from another site; reload the page")
    if action is None:
        return render(request, "error.html", 404, message="no such action here")
    task_id, queue = form.get("id", ""), form.get("queue", "")
    try:
        if action.target == "task":
            notice = await asyncio.to_thread(action.run, dash.app, task_id, *(
                [queue] if action.name == "retry" else []))
        else:
            notice = await asyncio.to_thread(action.run, dash.app, queue)
    except ConveyorError as exc:
        notice = f"could not {action.name}: {exc}"
    back = _safe_next(form.get("next", "/"))
    joiner = "&" if "?" in back else "?"
    return RedirectResponse(f"{back}{joiner}{urlencode({'notice': notice})}", 303)


def _safe_next(target: str) -> str:
    """Only a path of this site: never another host after an action."""
    return target if target.startswith("/") and not target.startswith("//") else "/"


def _same_origin(request: Request) -> bool:
    origin = request.headers.get("origin") or request.headers.get("referer") or ""
    if not origin:
        return True  # no header (some clients send none): the CSRF token alone decides
    host = request.headers.get("host", "")
    return origin.split("://", 1)[-1].split("/", 1)[0] == host


# -- login --------------------------------------------------------------------------------
async def login(request: Request) -> Response:
    dash = _dash(request)
    if request.method == "GET":
        return render(request, "login.html", failed=False)
    form = await _form(request)
    if not csrf_ok(request.scope["state"]["csrf"], form.get(CSRF_FIELD, "")):
        return render(request, "login.html", 403, failed=True)
    if not dash.auth.token_matches(form.get("token", "")):
        return render(request, "login.html", 401, failed=True)
    response = RedirectResponse("/", 303)
    response.set_cookie(SESSION_COOKIE, dash.auth.session_value(), httponly=True,
                        samesite="strict", secure=request.url.scheme == "https")
    return response


# -- data ---------------------------------------------------------------------------------
async def live(request: Request) -> Response:
    stream = request.app.state.live.listen(rows=request.query_params.get("rows") == "1")
    return StreamingResponse(stream, media_type="text/event-stream",
                             headers={"cache-control": "no-store", "x-accel-buffering": "no"})


async def api_overview(request: Request) -> Response:
    dash = _dash(request)
    return JSONResponse({**await dash.overview(), "broker": dash.broker_url,
                         "backend": dash.backend_url,
                         "series": dash.activity.series(dash.now)})


async def api_workers(request: Request) -> Response:
    return JSONResponse([w.to_dict() for w in _dash(request).workers()])


async def api_tasks(request: Request) -> Response:
    dash = _dash(request)
    try:
        where = _filter(request)
    except ConveyorError as exc:
        return JSONResponse({"error": str(exc)}, 400)
    size = min(int(request.query_params.get("limit", PAGE_SIZE) or PAGE_SIZE), 500)
    page = await asyncio.to_thread(dash.index.page, where, _before(request), size)
    return JSONResponse({"tasks": page.rows, "next_before": page.next_before})


async def api_task(request: Request) -> Response:
    dash = _dash(request)
    found = await _task(dash, request.path_params["task_id"])
    if found is None:
        return JSONResponse({"error": "unknown task"}, 404)
    return JSONResponse(_json_task(found))


def _json_task(found: dict[str, Any]) -> dict[str, Any]:
    outcome = found["outcome"]
    shown = None if outcome is None else {
        "state": str(outcome.state), "value": repr(outcome.value), "retries": outcome.retries,
        "error": None if outcome.error is None else {
            "type": outcome.error.type, "message": outcome.error.message,
            "traceback": outcome.error.traceback},
        "at": outcome.at, "task": outcome.task}
    return {**found, "outcome": shown}


async def metrics(request: Request) -> Response:
    dash = _dash(request)
    if dash.metrics is None:
        return PlainTextResponse("metrics need the metrics extra (prometheus-client)", 404)
    from ..metrics import CONTENT_TYPE_LATEST

    body = await asyncio.to_thread(dash.metrics.render)
    return Response(body, media_type=CONTENT_TYPE_LATEST)


def create_app(dash: Dashboard) -> Starlette:
    """The ASGI app serving ``dash``; following events runs for the app's lifespan."""

    @asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        async with dash.running():
            yield

    routes = [
        Route("/", overview), Route("/workers", workers), Route("/queues", queues),
        Route("/tasks", tasks), Route("/tasks/{task_id:str}", task),
        Route("/partials/charts", charts_fragment),
        Route("/confirm/{action:str}", confirm), Route("/actions/{action:str}", act,
                                                       methods=["POST"]),
        Route("/login", login, methods=["GET", "POST"]), Route("/live", live),
        Route("/api/overview", api_overview), Route("/api/workers", api_workers),
        Route("/api/tasks", api_tasks), Route("/api/tasks/{task_id:str}", api_task),
        Route("/metrics", metrics),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ]
    web = Starlette(routes=routes, lifespan=lifespan)
    web.state.dash = dash
    web.state.live = Live(dash)
    web.add_middleware(Guard, auth=dash.auth)
    return web
