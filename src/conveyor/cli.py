"""The ``conveyor`` command: worker, beat, inspect, control, revoke, purge, result, events,
dashboard, metrics and dlq (dead letters)."""

from __future__ import annotations

import contextlib
import os
from typing import TYPE_CHECKING

import click

from .control import cli as _control_cli
from .errors import ConveyorError
from .loader import load_app

if TYPE_CHECKING:
    from .app import Conveyor
    from .brokers import DeadLetterAdmin, QueueAdmin
    from .worker.groups import QueueGroup

APP_OPTION = click.option("-A", "--app", "app_path", required=True, envvar="CONVEYOR_APP",
                          help="The application: module or module:attribute.")


def _queues(value: str) -> list[str]:
    return [q.strip() for q in value.split(",") if q.strip()]


@click.group()
@click.version_option(package_name="conveyor-tasks")
def cli() -> None:
    """Conveyor: a distributed task queue."""


@cli.command()
@APP_OPTION
@click.option("-Q", "--queues", default="default", show_default=True,
              help="Comma-separated queues to consume, earlier ones first on ties; QUEUE:N "
                   "gives a queue N slots of its own (-Q emails:4,reports:1,default), the "
                   "queues without a number share the rest of -c.")
@click.option("-c", "--concurrency", type=int, default=None,
              help="Processes (process pool) or concurrent tasks (thread/async). Default: CPUs.")
@click.option("--pool", type=click.Choice(["process", "thread", "async"]), default="process",
              show_default=True)
@click.option("--prefetch", type=int, default=None,
              help="Messages a worker process may hold (default: what it can run at once). "
                   "More saves round trips on short tasks; less keeps long tasks from holding "
                   "back messages other workers could run.")
@click.option("--lease", type=float, default=None, help="Lease seconds (default: the app's).")
@click.option("--grace", type=float, default=30.0, show_default=True,
              help="Seconds running tasks get to finish on SIGTERM.")
@click.option("-n", "--name", default=None,
              help="The worker's name in events and inspect (default: host.pid).")
@click.option("-l", "--loglevel", default="info", show_default=True,
              type=click.Choice(["debug", "info", "warning", "error"], case_sensitive=False))
@click.option("--logfile", default=None, type=click.Path(dir_okay=False),
              help="Write the log to this file instead of stderr.")
@click.option("-B", "--beat", "with_beat", is_flag=True,
              help="Also run a beat (periodic tasks) in this worker; any number of workers "
                   "may, each tick is still sent once.")
def worker(app_path: str, queues: str, concurrency: int | None, pool: str,
           prefetch: int | None, lease: float | None, grace: float, name: str | None,
           loglevel: str, logfile: str | None, with_beat: bool) -> None:
    """Run a worker that consumes QUEUES and executes their tasks."""
    from .worker.child import configure_logging
    from .worker.pools import (
        Options,
        Supervisor,
        child_argv,
        child_plan,
        default_name,
        run_in_process,
    )

    configure_logging(loglevel, logfile)
    names, groups = _queue_groups(queues, concurrency)
    count = sum(g.slots for g in groups) if groups else concurrency or os.cpu_count() or 1
    options = Options(names, count, pool, grace, lease, prefetch, name or default_name(), True,
                      app_path, tuple(groups), beat=with_beat)
    if pool == "process":
        argv = child_argv(options, loglevel=loglevel, logfile=logfile)
        plan = child_plan(options, loglevel=loglevel, logfile=logfile)
        raise SystemExit(Supervisor(argv, count, plan=plan, beat=with_beat).run())
    run_in_process(_load(app_path), options)


def _queue_groups(spec: str, concurrency: int | None) -> tuple[list[str], list[QueueGroup]]:
    """The queue names of ``-Q`` and its slot groups (none when no queue has a number)."""
    from .worker.groups import parse_queues, plan_groups

    try:
        items = parse_queues(spec)
        numbered = any(n is not None for _, n in items)
        groups = plan_groups(items, concurrency, os.cpu_count() or 1) if numbered else []
    except ConveyorError as exc:
        raise click.BadParameter(str(exc), param_hint="-Q/-c") from None
    return [name for name, _ in items], groups


@cli.command()
@APP_OPTION
@click.option("-l", "--loglevel", default="info", show_default=True,
              type=click.Choice(["debug", "info", "warning", "error"], case_sensitive=False))
@click.option("--logfile", default=None, type=click.Path(dir_okay=False),
              help="Write the log to this file instead of stderr.")
def beat(app_path: str, loglevel: str, logfile: str | None) -> None:
    """Send periodic tasks when they are due. Run as many as you like, on any machines: one
    leads at a time, another takes over when it dies, and each tick is sent once."""
    from .schedule.run import run_beat_process
    from .worker.child import configure_logging

    configure_logging(loglevel, logfile)
    run_beat_process(_load(app_path))


@cli.command()
@APP_OPTION
@click.option("-Q", "--queue", required=True)
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
def purge(app_path: str, queue: str, yes: bool) -> None:
    """Delete every waiting (ready and delayed) message of a queue."""
    if not yes:
        click.confirm(f"Delete every waiting message of {queue!r}?", abort=True)
    click.echo(f"purged {_admin(_load(app_path)).purge(queue)} message(s)")


@cli.command()
@APP_OPTION
@click.argument("task_id")
def result(app_path: str, task_id: str) -> None:
    """Show a task's state and value or error."""
    found = _load(app_path).AsyncResult(task_id).outcome()
    if found is None:
        click.echo(f"{task_id}: UNKNOWN")
        return
    click.echo(f"{task_id}: {found.state} (task {found.task or '?'}, retries {found.retries})")
    if found.error is not None:
        click.echo(found.error.traceback or f"{found.error.type}: {found.error.message}")
    else:
        click.echo(repr(found.value))


@cli.command()
@APP_OPTION
@click.option("--after", default=None, help="Resume after this event id ('0': from the oldest).")
@click.option("--kind", "kinds", multiple=True,
              help="Only these kinds (task-failed, worker-*, ...); repeatable, globs allowed.")
@click.option("--count", type=int, default=None, help="Stop after this many events.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
def events(app_path: str, after: str | None, kinds: tuple[str, ...], count: int | None,
           as_json: bool) -> None:
    """Follow task and worker events live (Ctrl-C to stop)."""
    import asyncio

    from .eventview import follow

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(follow(_load(app_path), after, kinds, count, as_json))


# -- monitoring: the dashboard and the metrics exporter -----------------------------------
@cli.command()
@APP_OPTION
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on; another than the loopback needs a login "
                   "(CONVEYOR_DASHBOARD_TOKEN, or CONVEYOR_DASHBOARD_USER and _PASSWORD).")
@click.option("--port", type=int, default=5555, show_default=True)
@click.option("--db", default=None, type=click.Path(dir_okay=False),
              help="The dashboard's task index (default: under ~/.local/state/conveyor).")
def dashboard(app_path: str, host: str, port: int, db: str | None) -> None:
    """Serve the live web dashboard (and /metrics)."""
    from .dashboard import serve

    app = _load(app_path)
    click.echo(f"conveyor dashboard for {app.name} on http://{host}:{port}/")
    serve(app, host, port, db)


@cli.command()
@APP_OPTION
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=int, default=9808, show_default=True)
def metrics(app_path: str, host: str, port: int) -> None:
    """Serve Prometheus metrics at /metrics, without the dashboard."""
    try:
        from .metrics import serve
    except ImportError as exc:
        raise click.ClickException(
            f"metrics need {exc.name}; install conveyor-tasks[metrics]") from exc
    app = _load(app_path)
    click.echo(f"conveyor metrics for {app.name} on http://{host}:{port}/metrics")
    with contextlib.suppress(KeyboardInterrupt):
        serve(app, host, port)


@cli.group()
def dlq() -> None:
    """Inspect, replay and purge dead-lettered messages."""


@dlq.command("list")
@APP_OPTION
@click.option("-Q", "--queue", default=None)
@click.option("--limit", type=int, default=100, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
def dlq_list(app_path: str, queue: str | None, limit: int, as_json: bool) -> None:
    """List dead letters, oldest first, with their reasons."""
    import datetime as dt
    import json

    from rich.console import Console
    from rich.table import Table

    letters = _dead(_load(app_path)).dead_letters(queue, limit)
    if as_json:
        for letter in letters:
            click.echo(json.dumps({"id": letter.envelope.id, "queue": letter.envelope.queue,
                                   "failed_at": letter.failed_at, "reason": letter.reason}))
        return
    table = Table(title=f"{len(letters)} dead letter(s)")
    table.add_column("id", no_wrap=True, min_width=36)
    for name in ("queue", "failed at", "reason"):
        table.add_column(name)
    for letter in letters:
        when = dt.datetime.fromtimestamp(letter.failed_at).isoformat(timespec="seconds")
        table.add_row(letter.envelope.id, letter.envelope.queue, when, letter.reason)
    Console().print(table)


@dlq.command("replay")
@APP_OPTION
@click.option("-Q", "--queue", default=None)
@click.argument("ids", nargs=-1)
def dlq_replay(app_path: str, queue: str | None, ids: tuple[str, ...]) -> None:
    """Send dead letters (IDS, or all of a queue, or all) back to their queues once."""
    app = _load(app_path)
    chosen = list(ids) or [d.envelope.id for d in _dead(app).dead_letters(queue, 1_000_000)]
    for task_id in chosen:  # a replayed task must be able to record a new outcome
        app.backend.forget(task_id)
    click.echo(f"replayed {_dead(app).replay_dead(chosen)} message(s)")


@dlq.command("purge")
@APP_OPTION
@click.option("-Q", "--queue", default=None)
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
def dlq_purge(app_path: str, queue: str | None, yes: bool) -> None:
    """Delete dead letters for good."""
    if not yes:
        click.confirm("Delete these dead letters for good?", abort=True)
    click.echo(f"purged {_dead(_load(app_path)).purge_dead(queue)} dead letter(s)")


_control_cli.register(cli)  # inspect (queues, active, scheduled, ...), control, revoke


def _admin(app: Conveyor) -> QueueAdmin:
    from .brokers import queue_admin  # here: the worker's supervisor never opens a store

    return queue_admin(app.broker)


def _dead(app: Conveyor) -> DeadLetterAdmin:
    from .brokers import dead_letter_admin

    return dead_letter_admin(app.broker)


def _load(app_path: str) -> Conveyor:
    try:
        return load_app(app_path)
    except ConveyorError as exc:
        raise click.ClickException(str(exc)) from exc


def main() -> None:
    """Entry point of the ``conveyor`` script."""
    try:
        cli(standalone_mode=True)
    except ConveyorError as exc:  # raised outside click's own handling, e.g. opening a store
        click.echo(f"Error: {exc}", err=True)
        raise SystemExit(1) from None
