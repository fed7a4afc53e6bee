"""``conveyor inspect``, ``conveyor control`` and ``conveyor revoke``: rich tables by default,
``--json`` for scripts. Bare ``conveyor inspect`` shows the queues, as it always did.

Stores, the app and rich are imported inside the commands: the ``conveyor`` script is also the
worker's supervisor, which stays small."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import click

from ..errors import ConveyorError

if TYPE_CHECKING:
    from ..app import Conveyor

_APP = click.option("-A", "--app", "app_path", default=None, envvar="CONVEYOR_APP",
                    help="The application: module or module:attribute.")
_JSON = click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
_DEST = click.option("-d", "--destination", "destination", multiple=True,
                     help="Only this worker (its --name); repeatable. Default: all.")


def _queues(value: str | None) -> list[str] | None:
    return [q.strip() for q in value.split(",") if q.strip()] if value else None


def _app(ctx: click.Context, given: str | None) -> Conveyor:
    path = given or (ctx.obj or {}).get("app_path")
    if not path:
        raise click.UsageError("Missing option '-A' / '--app' (or $CONVEYOR_APP).")
    from ..loader import load_app

    try:
        app = load_app(path)
    except ConveyorError as exc:
        raise click.ClickException(str(exc)) from exc
    ctx.call_on_close(app.close)
    return app


def _print(rows: Sequence[dict[str, Any]], as_json: bool, title: str,
           columns: Sequence[tuple[str, Callable[[dict[str, Any]], str]]]) -> None:
    if as_json:
        click.echo(json.dumps(list(rows), default=str))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(*(name for name, _ in columns), title=title)
    for row in rows:
        table.add_row(*(show(row) for _, show in columns))
    Console().print(table)


def _when(epoch: float | None) -> str:
    return dt.datetime.fromtimestamp(epoch).isoformat(timespec="seconds") if epoch else "-"


def _groups(row: dict[str, Any]) -> str:
    groups = row.get("groups") or [{"queues": row.get("queues") or [],
                                    "slots": row.get("concurrency")}]
    return " ".join(f"{','.join(g['queues'])}:{g['slots']}" for g in groups)


# -- inspect ----------------------------------------------------------------------------------

@click.group(invoke_without_command=True)
@_APP
@click.option("-Q", "--queues", default=None, help="Queues to show (default: all known).")
@click.pass_context
def inspect(ctx: click.Context, app_path: str | None, queues: str | None) -> None:
    """Queues (the default), and what workers run, hold and know."""
    ctx.ensure_object(dict)["app_path"] = app_path
    if ctx.invoked_subcommand is None:
        ctx.invoke(inspect_queues, app_path=app_path, queues=queues, as_json=False)


@inspect.command("queues")
@_APP
@click.option("-Q", "--queues", default=None, help="Queues to show (default: all known).")
@_JSON
@click.pass_context
def inspect_queues(ctx: click.Context, app_path: str | None, queues: str | None,
                   as_json: bool) -> None:
    """Ready, in-flight, delayed and dead counts per queue (in flight on RabbitMQ: what
    the live workers' heartbeats report running)."""
    from ..brokers import queue_admin  # here: the worker's supervisor never opens a store
    from ..queuecounts import queue_counts
    from .commands import run_sync
    from .inspect import live_heartbeats

    app = _app(ctx, app_path)
    admin = queue_admin(app.broker)
    living = [] if admin.exact_counts else run_sync(live_heartbeats(app))
    rows = [{"queue": s.queue, "ready": s.ready, "in_flight": s.in_flight,
             "delayed": s.delayed, "dead": s.dead}
            for s in queue_counts(admin, app.default_queue, living, _queues(queues) or ())]
    _print(rows, as_json, f"{app.name} @ {app.broker.url}", [
        ("queue", lambda r: r["queue"]), ("ready", lambda r: str(r["ready"])),
        ("in flight", lambda r: str(r["in_flight"])), ("delayed", lambda r: str(r["delayed"])),
        ("dead", lambda r: str(r["dead"]))])


@inspect.command("active")
@_APP
@_DEST
@_JSON
@click.pass_context
def inspect_active(ctx: click.Context, app_path: str | None, destination: tuple[str, ...],
                   as_json: bool) -> None:
    """What each worker process runs now (from heartbeats)."""
    procs = _app(ctx, app_path).control.inspect(destination).active()
    if as_json:
        click.echo(json.dumps(procs))
        return
    rows = [{**p, **task} for p in procs for task in p["active"]]
    _print(rows, False, f"{len(rows)} task(s) running in {len(procs)} worker process(es)", [
        ("worker", lambda r: r["worker"]), ("pid", lambda r: str(r["pid"])),
        ("task", lambda r: r["task"]), ("id", lambda r: r["id"]),
        ("running for", lambda r: f"{r['runtime']:.1f}s")])


@inspect.command("scheduled")
@_APP
@click.option("-Q", "--queues", default=None, help="Queues to list (default: all known).")
@click.option("--limit", type=int, default=100, show_default=True)
@_JSON
@click.pass_context
def inspect_scheduled(ctx: click.Context, app_path: str | None, queues: str | None,
                      limit: int, as_json: bool) -> None:
    """Delayed tasks (countdowns, retries, waits for a rate limit or slot), earliest first."""
    rows = _app(ctx, app_path).control.inspect().scheduled(_queues(queues), limit)
    _print(rows, as_json, f"{len(rows)} scheduled task(s)", [
        ("eta", lambda r: _when(r["eta"])), ("queue", lambda r: r["queue"]),
        ("task", lambda r: r["task"]), ("id", lambda r: r["id"]),
        ("retries", lambda r: str(r["retries"])), ("args", lambda r: r["args"])])


@inspect.command("registered")
@_APP
@_DEST
@click.option("--timeout", type=float, default=1.0, show_default=True,
              help="Seconds to wait for the workers' answers.")
@_JSON
@click.pass_context
def inspect_registered(ctx: click.Context, app_path: str | None, destination: tuple[str, ...],
                       timeout: float, as_json: bool) -> None:
    """The tasks each running worker process knows (it is asked)."""
    rows = _app(ctx, app_path).control.inspect(destination).registered(timeout)
    _print(rows, as_json, f"{len(rows)} worker process(es) answered", [
        ("worker", lambda r: r["worker"]), ("pid", lambda r: str(r["pid"])),
        ("tasks", lambda r: ", ".join(r["tasks"]))])


@inspect.command("stats")
@_APP
@_DEST
@_JSON
@click.pass_context
def inspect_stats(ctx: click.Context, app_path: str | None, destination: tuple[str, ...],
                  as_json: bool) -> None:
    """Pool, slots per queue, counters, load and uptime of each worker process."""
    rows = _app(ctx, app_path).control.inspect(destination).stats()
    _print(rows, as_json, f"{len(rows)} worker process(es)", [
        ("worker", lambda r: r["worker"]), ("pid", lambda r: str(r["pid"])),
        ("pool", lambda r: str(r["pool"])), ("queues:slots", _groups),
        ("active", lambda r: str(r["active"])), ("processed", lambda r: str(r["processed"])),
        ("failed", lambda r: str(r["failed"])),
        ("load", lambda r: " ".join(f"{x:.2f}" for x in r["load"] or [])),
        ("up", lambda r: f"{r['uptime']:.0f}s")])


# -- control ----------------------------------------------------------------------------------

@click.group()
def control() -> None:
    """Commands for running workers: revoke, rate-limit, shutdown, ping."""


def _revoke(ctx: click.Context, app_path: str | None, ids: tuple[str, ...],
            terminate: bool, as_json: bool) -> None:
    if not ids:
        raise click.UsageError("name at least one task id")
    revoked = _app(ctx, app_path).control.revoke(list(ids), terminate=terminate)
    if as_json:
        click.echo(json.dumps({"ids": list(ids), "revoked": revoked, "terminate": terminate}))
        return
    for task_id in ids:
        state = "revoked" if task_id in revoked else "already finished (kept from running again)"
        click.echo(f"{task_id}: {state}{' and terminated where running' if terminate else ''}")


_TERMINATE = click.option("--terminate", is_flag=True, help="Also stop it where it runs now.")


@control.command("revoke")
@_APP
@click.argument("ids", nargs=-1)
@_TERMINATE
@_JSON
@click.pass_context
def control_revoke(ctx: click.Context, app_path: str | None, ids: tuple[str, ...],
                   terminate: bool, as_json: bool) -> None:
    """Revoke tasks by id: they never run; with --terminate, stop them where they run."""
    _revoke(ctx, app_path, ids, terminate, as_json)


@click.command("revoke")
@_APP
@click.argument("ids", nargs=-1)
@_TERMINATE
@_JSON
@click.pass_context
def revoke(ctx: click.Context, app_path: str | None, ids: tuple[str, ...], terminate: bool,
           as_json: bool) -> None:
    """Revoke tasks by id (as `conveyor control revoke`)."""
    _revoke(ctx, app_path, ids, terminate, as_json)


@control.command("rate-limit")
@_APP
@click.argument("target")
@click.argument("rate")
@click.option("--queue", is_flag=True, help="TARGET is a queue, not a task.")
@click.pass_context
def control_rate_limit(ctx: click.Context, app_path: str | None, target: str, rate: str,
                       queue: bool) -> None:
    """Set TARGET's rate limit on every worker now: N/s, N/m, N/h, off, or reset."""
    app = _app(ctx, app_path)
    app.control.rate_limit(target, None if rate.lower() == "reset" else rate, queue=queue)
    kind = "queue" if queue else "task"
    shown = "back to its configured limit" if rate.lower() == "reset" else rate
    click.echo(f"rate limit of {kind} {target}: {shown}")


@control.command("shutdown")
@_APP
@click.argument("names", nargs=-1)
@click.option("--all", "everyone", is_flag=True, help="Every worker of the app.")
@click.pass_context
def control_shutdown(ctx: click.Context, app_path: str | None, names: tuple[str, ...],
                     everyone: bool) -> None:
    """Stop workers gracefully: those NAMES (their --name), or --all."""
    if bool(names) == everyone:
        raise click.UsageError("name the workers to stop, or give --all")
    _app(ctx, app_path).control.shutdown(list(names) or None)
    click.echo(f"shutdown sent to {', '.join(names) if names else 'every worker'}")


@control.command("ping")
@_APP
@_DEST
@click.option("--timeout", type=float, default=1.0, show_default=True)
@_JSON
@click.pass_context
def control_ping(ctx: click.Context, app_path: str | None, destination: tuple[str, ...],
                 timeout: float, as_json: bool) -> None:
    """Which worker processes answer."""
    rows = _app(ctx, app_path).control.ping(destination or None, timeout)
    _print(rows, as_json, f"{len(rows)} worker process(es) answered", [
        ("worker", lambda r: r["worker"]), ("pid", lambda r: str(r["pid"]))])


def register(cli: click.Group) -> None:
    """Add these commands to the ``conveyor`` group."""
    for command in (inspect, control, revoke):
        cli.add_command(command)
