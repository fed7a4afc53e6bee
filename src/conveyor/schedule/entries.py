"""Periodic entries: what the beat sends, and when. Three ways to declare one:

```python
app.add_periodic_task(crontab(minute=0, hour=7, tz="Europe/Moscow"), report.s(), name="report")
app.add_periodic_task(timedelta(hours=1), cleanup.s())        # or 3600.0 seconds

@app.periodic(cron="0 7 * * *", tz="Europe/Moscow")             # registers the task too
def daily_report() -> None: ...

app.conf.beat_schedule = {"cleanup": {"task": "shop.cleanup", "schedule": 3600}}
```

``catch_up`` says what a beat does with ticks that came due while no beat was running (after a
restart, or while the lead passed from a killed beat to another): ``"once"`` (the default) sends
the latest missed tick once, ``"skip"`` sends none and waits for the next tick, ``"all"`` sends
every missed tick, oldest first (at most :data:`MAX_CATCH_UP`).
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Iterable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Literal, ParamSpec, Protocol, TypeVar, overload

from ..errors import ConfigurationError
from .base import Schedule
from .cron import cron as cron_schedule
from .interval import every as every_schedule

if TYPE_CHECKING:
    from ..app import Conveyor
    from ..canvas import Signature
    from ..task import AsyncTask, Task

P = ParamSpec("P")
R = TypeVar("R")

CatchUp = Literal["once", "skip", "all"]
CATCH_UP: tuple[str, ...] = ("once", "skip", "all")
#: The most missed ticks ``catch_up="all"`` sends in one go (the latest ones).
MAX_CATCH_UP = 1000
_CONFIG_KEYS = {"task", "schedule", "args", "kwargs", "options", "catch_up", "name"}


@dataclass(frozen=True)
class Entry:
    """One periodic task: its unique ``name``, when (``schedule``), what (``signature``) and
    what to do about missed ticks (``catch_up``)."""

    name: str
    schedule: Schedule
    signature: Signature[Any]
    catch_up: CatchUp = "once"

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ConfigurationError(f"a periodic entry needs a name, got {self.name!r}")
        if self.catch_up not in CATCH_UP:
            raise ConfigurationError(f"periodic entry {self.name!r}: catch_up must be one of"
                                     f" {', '.join(CATCH_UP)}, not {self.catch_up!r}")

    def describe(self) -> str:
        return f"{self.name}: {self.signature!r} {self.schedule.describe()}"


def as_schedule(value: Any, tz: str | None, where: str) -> Schedule:
    """A Schedule from seconds, a timedelta, a cron expression (in zone ``tz``), a mapping
    ``{"cron": ..., "tz": ...}`` / ``{"every": seconds}``, or a Schedule."""
    if isinstance(value, Schedule):
        return value
    if isinstance(value, timedelta) or (isinstance(value, int | float)
                                         and not isinstance(value, bool)):
        return every_schedule(value)
    if isinstance(value, str):
        return cron_schedule(value, tz)
    if isinstance(value, Mapping) and set(value) <= {"cron", "tz", "every"}:
        if "cron" in value:
            return cron_schedule(value["cron"], value.get("tz", tz))
        if "every" in value:
            return every_schedule(value["every"])
    raise ConfigurationError(f"{where}: schedule must be seconds, a timedelta, a cron string,"
                             f" crontab(...) or every(...), not {value!r}")


def add_entry(app: Conveyor, entry: Entry) -> Entry:
    """Register ``entry`` with ``app``; a second, different entry of the same name is an
    error (the same one again is not, as when a module is imported twice)."""
    known = app.periodic_tasks.get(entry.name)
    if known is not None and (known.schedule.key(), known.signature) != (
            entry.schedule.key(), entry.signature):
        raise ConfigurationError(f"two periodic entries are named {entry.name!r}: give each"
                                 " its own name=")
    app.periodic_tasks[entry.name] = entry
    return entry


def add_periodic_task(app: Conveyor, schedule: Any, signature: Signature[Any],
                      name: str | None, catch_up: CatchUp, args: Iterable[Any],
                      kwargs: Mapping[str, Any] | None, options: Mapping[str, Any]) -> Entry:
    """Celery's ``app.add_periodic_task(schedule, sig, name=...)``; see :class:`Entry`."""
    sig = signature.clone(args, kwargs, **options) if (args or kwargs or options) else signature
    made = Entry(name or repr(sig), as_schedule(schedule, app.conf.timezone,
                                                f"periodic task {name or repr(sig)}"),
                 sig, catch_up)
    return add_entry(app, made)


def from_config(app: Conveyor) -> list[Entry]:
    """The entries of the ``beat_schedule`` setting: ``{name: {"task": ..., "schedule": ...,
    "args": [...], "kwargs": {...}, "options": {...}, "catch_up": "once"}}``."""
    from ..canvas import signature

    found = []
    for name, spec in app.conf.beat_schedule.items():
        where = f"beat_schedule entry {name!r}"
        if not isinstance(spec, Mapping) or "task" not in spec or "schedule" not in spec:
            raise ConfigurationError(f"{where} needs at least 'task' and 'schedule'")
        unknown = sorted(set(spec) - _CONFIG_KEYS)
        if unknown:
            raise ConfigurationError(f"{where}: unknown key(s) {', '.join(unknown)}; known:"
                                     f" {', '.join(sorted(_CONFIG_KEYS))}")
        sig = signature(spec["task"], spec.get("args", ()), spec.get("kwargs"), app=app,
                        **dict(spec.get("options") or {}))
        found.append(Entry(str(spec.get("name", name)),
                           as_schedule(spec["schedule"], app.conf.timezone, where), sig,
                           spec.get("catch_up", "once")))
    return found


def entries(app: Conveyor) -> list[Entry]:
    """Every entry of ``app``: declared in code, then from the ``beat_schedule`` setting."""
    declared = dict(app.periodic_tasks)
    for entry in from_config(app):
        if entry.name in declared:
            raise ConfigurationError(f"periodic entry {entry.name!r} is declared in code and"
                                     " in beat_schedule")
        declared[entry.name] = entry
    return list(declared.values())


class PeriodicDecorator(Protocol):
    """What ``@app.periodic(...)`` returns: it registers the function as a task (unless it is
    one) and adds the entry."""

    @overload
    def __call__(self, fn: AsyncTask[P, R]) -> AsyncTask[P, R]: ...
    # A Task of a coroutine function is an AsyncTask, matched by the overload above
    @overload
    def __call__(self, fn: Task[P, R]) -> Task[P, R]: ...  # type: ignore[overload-overlap]
    @overload
    def __call__(self, fn: Callable[P, Coroutine[Any, Any, R]]) -> AsyncTask[P, R]: ...
    @overload
    def __call__(self, fn: Callable[P, R]) -> Task[P, R]: ...


def periodic(app: Conveyor, schedule: Schedule | None, cron: str | None,
             every: timedelta | float | None, tz: str | None, name: str | None,
             catch_up: CatchUp, args: Iterable[Any], kwargs: Mapping[str, Any] | None,
             task_options: Mapping[str, Any]) -> PeriodicDecorator:
    """``@app.periodic(cron=...)``, ``(every=...)`` or ``(schedule=...)``; see
    :meth:`conveyor.Conveyor.periodic`."""
    from ..task import Task

    given = [s for s in (schedule, cron, every) if s is not None]
    if len(given) != 1:
        raise ConfigurationError("app.periodic takes one of cron=, every= or schedule=")
    if tz is not None and cron is None:
        raise ConfigurationError("app.periodic: tz= goes with cron= (crontab() and cron()"
                                 " take their own tz)")
    when = as_schedule(given[0], tz or app.conf.timezone, "app.periodic")

    def register(fn: Any) -> Any:
        task = fn if isinstance(fn, Task) else app.task(**task_options)(fn)
        sig = task.s(*args, **dict(kwargs or {}))
        add_entry(app, Entry(name or task.name, when, sig, catch_up))
        return task

    return register
