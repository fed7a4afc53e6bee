"""The worker's start-up banner: what it runs, where from, and how."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..version import VERSION

if TYPE_CHECKING:
    from ..app import Conveyor
    from .pools import Options
    from .worker import Worker


def banner(app: Conveyor, worker: Worker, options: Options) -> str:
    """A few aligned lines; the broker and backend URLs have their passwords masked."""
    tasks = sorted(app.tasks)
    results = "the broker's store" if app.shared_store else app.backend.url
    rows = [
        ("app", f"{app.name} ({options.app_path})" if options.app_path else app.name),
        ("broker", app.broker.url),
        ("results", results),
        ("queues", ", ".join(g.describe() for g in options.groups) if options.groups
                   else ", ".join(options.queues)),
        ("pool", f"{options.pool}, concurrency {options.concurrency}"
                 f" (prefetch {worker.prefetch} per process)"),
        (f"tasks ({len(tasks)})", ", ".join(tasks) or "none registered"),
    ]
    if options.beat:  # worker --beat
        periodic = sorted(app.periodic_tasks) + sorted(app.conf.beat_schedule)
        rows.append((f"beat ({len(periodic)})", ", ".join(periodic) or "no periodic entries"))
    width = max(len(label) for label, _ in rows)
    lines = [f"conveyor {VERSION} worker {worker.name} ready"]
    lines += [f"  {label:<{width}}  {value}" for label, value in rows]
    return "\n".join(lines)

