"""What the dashboard's buttons do, each a plain function of the app (run off the event loop).

Each returns a sentence for the page, or raises ConveyorError with the reason it could not.
A revoke is also written to the event log, so every dashboard and metrics scraper sees it at
once, not only when a worker later skips the task.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .. import events as ev
from ..brokers import dead_letter_admin, queue_admin
from ..errors import ConveyorError
from ..events import Event
from ..middleware.events import event_log, retention
from ..result import AsyncResult

if TYPE_CHECKING:
    from ..app import Conveyor

#: Dead letters scanned to find one by id (the store lists them oldest first).
SCAN = 100_000


@dataclass(frozen=True, slots=True)
class Action:
    """One button: its name, the question it asks before it acts, and what it does."""

    name: str
    question: str
    run: Callable[..., str]
    target: str  # "task", "queue" or "dlq"


def revoke(app: Conveyor, task_id: str) -> str:
    if not AsyncResult(task_id, app).revoke():
        raise ConveyorError(f"task {task_id} already finished; nothing to revoke")
    _note(app, ev.TASK_REVOKED, task_id)
    return f"revoked {task_id}: a worker that has not started it will skip it"


def terminate(app: Conveyor, task_id: str) -> str:
    control = getattr(app, "control", None)
    if control is None:
        raise ConveyorError("terminating a running task needs remote control, which this"
                            " version does not have")
    control.revoke(task_id, terminate=True)
    _note(app, ev.TASK_REVOKED, task_id, terminate=True)
    return f"asked the worker running {task_id} to stop it"


def retry(app: Conveyor, task_id: str, queue: str = "") -> str:
    """Send a failed task's kept message (its dead letter) back to its queue, same id."""
    admin = dead_letter_admin(app.broker)
    letters = [d for d in admin.dead_letters(queue or None, SCAN) if d.envelope.id == task_id]
    if not letters:
        raise ConveyorError(f"no dead letter of {task_id} is kept, so its arguments are not"
                            " known; it cannot be sent again from here")
    app.backend.forget(task_id)  # a replayed task must be able to record a new outcome
    count = admin.replay_dead([task_id])
    return f"sent {task_id} again ({count} message)"


def replay_dead(app: Conveyor, queue: str = "") -> str:
    admin = dead_letter_admin(app.broker)
    ids = [d.envelope.id for d in admin.dead_letters(queue or None, SCAN)]
    for task_id in ids:
        app.backend.forget(task_id)
    count = admin.replay_dead(ids)
    return f"replayed {count} dead letter(s)" + (f" of {queue}" if queue else "")


def purge_dead(app: Conveyor, queue: str = "") -> str:
    count = dead_letter_admin(app.broker).purge_dead(queue or None)
    return f"purged {count} dead letter(s)" + (f" of {queue}" if queue else "")


def purge_queue(app: Conveyor, queue: str) -> str:
    if not queue:
        raise ConveyorError("name the queue to purge")
    return f"purged {queue_admin(app.broker).purge(queue)} waiting message(s) of {queue}"


def _note(app: Conveyor, kind: str, task_id: str, **fields: Any) -> None:
    log = event_log(app)
    if log is not None:
        event = Event(kind, app.clock.time(), task_id, "", "", 0, {"by": "dashboard", **fields})
        log.append_events_sync([event], retention(app))


def available(app: Conveyor) -> dict[str, Action]:
    """The actions this app's stores and version allow, by name."""
    found = {
        "revoke": Action("revoke", "Revoke task {id}? A worker that has not started it will"
                         " skip it.", revoke, "task"),
        "retry": Action("retry", "Send task {id} again, from its dead letter?", retry, "task"),
        "replay-dlq": Action("replay-dlq", "Send every dead letter{of} back to its queue?",
                             replay_dead, "dlq"),
        "purge-dlq": Action("purge-dlq", "Delete every dead letter{of} for good?", purge_dead,
                            "dlq"),
        "purge-queue": Action("purge-queue", "Delete every waiting message of {queue}?",
                              purge_queue, "queue"),
    }
    if getattr(app, "control", None) is not None:
        found["terminate"] = Action("terminate", "Stop task {id} now, killing its run?",
                                    terminate, "task")
    return found
