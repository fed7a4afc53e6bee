"""Runs one task function: coroutines on the event loop, plain functions in a thread."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import threading
from collections.abc import Callable, Coroutine
from contextlib import AbstractContextManager
from typing import Any

from ..handoff import Handoff
from ..message import Message
from ..task import Request, Task, set_request
from .inline import Inline
from .interrupt import Running, drive

#: Context managers entered around a task's own call, in the thread (or the asyncio task) it runs
#: in. Middleware add to it in ``around_run`` (see :func:`in_call`): Django's integration closes
#: stale database connections there, Flask's pushes the application context. Empty by default,
#: which costs one lookup per run.
_in_call: contextvars.ContextVar[tuple[Callable[[], AbstractContextManager[Any]], ...]] = (
    contextvars.ContextVar("conveyor_in_call", default=()))


@contextlib.contextmanager
def in_call(factory: Callable[[], AbstractContextManager[Any]]) -> Any:
    """While this is entered (in ``around_run``, around ``await call()``), the task's own call
    runs inside ``factory()``, in the thread or asyncio task that runs it."""
    token = _in_call.set((*_in_call.get(), factory))
    try:
        yield
    finally:
        _in_call.reset(token)


def _within(factories: tuple[Callable[[], AbstractContextManager[Any]], ...],
            fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    with contextlib.ExitStack() as stack:
        for factory in factories:
            stack.enter_context(factory())
        return fn(*args, **kwargs)


async def _awithin(factories: tuple[Callable[[], AbstractContextManager[Any]], ...],
                   coro: Coroutine[Any, Any, Any]) -> Any:
    with contextlib.ExitStack() as stack:
        for factory in factories:
            stack.enter_context(factory())
        return await coro


class Runner:
    """Calls tasks with their request context set. ``running`` maps the ids of calls in
    progress to their :class:`~conveyor.worker.interrupt.Running` handles (time limits and
    terminate interrupt them). ``runaway`` becomes True when a sync task was stopped while its
    thread runs on (it cannot be killed), so a process-pool child exits after settling.
    ``inline`` (a one-slot worker sets it) runs short sync tasks on the loop's thread."""

    def __init__(self, threads: int) -> None:
        self.pool = Handoff(threads, "task")
        self.runaway = False
        self.running: dict[str, Running] = {}
        self.inline: Inline | None = None  # set by a one-slot worker

    async def call(self, task: Task[Any, Any], message: Message, attempt: int, *,
                   loop_bound: bool = False) -> Any:
        """Run the task; ``loop_bound``: something needs the loop while it runs (a time limit,
        a renewal), so it may not run on the loop's thread (see :mod:`.inline`)."""
        request = Request(message.id, message.task, message.args, message.kwargs,
                          message.retries, attempt, message.queue, message.eta, message.options)
        inline = self.inline
        if inline is None or task.is_async:
            return await self._tracked(task, message, request)
        if not loop_bound and inline.admits(task.name):
            return inline.call(task.name, _bound(request, task, message))
        with inline.timing(task.name):
            return await self._tracked(task, message, request)

    async def _tracked(self, task: Task[Any, Any], message: Message, request: Request) -> Any:
        """The call in its asyncio task or pool thread, interruptible by its handle."""
        running = self.running[message.id] = Running()
        try:
            if task.is_async:
                set_request(request)  # before the task is made: it copies this context
                coro = task.run(*message.args, **message.kwargs)
                factories = _in_call.get()
                if factories:
                    coro = _awithin(factories, coro)
                running.task = asyncio.ensure_future(drive(coro, running))
                running.future = running.task
            else:
                running.future = self._in_thread(task, message, request, running)
            return await running.outcome()
        finally:
            self.running.pop(message.id, None)

    def _in_thread(self, task: Task[Any, Any], message: Message, request: Request,
                   running: Running) -> asyncio.Future[Any]:
        bound = _bound(request, task, message)

        def call() -> Any:
            with running.lock:
                running.thread = threading.get_ident()
            try:
                return bound()
            finally:  # a pool thread must not receive an exception meant for this call later
                with running.lock:
                    running.thread = None

        return self.pool.call(call)

    def close(self) -> None:
        self.pool.close(wait=False)
        if self.inline is not None:
            self.inline.close()


def _bound(request: Request, task: Task[Any, Any], message: Message) -> Callable[[], Any]:
    """A sync task's call, to make in any thread: in a copy of this context holding its
    request, inside the :func:`in_call` context managers in force here."""
    context = contextvars.copy_context()
    context.run(set_request, request)
    factories = _in_call.get()
    if factories:
        return lambda: context.run(_within, factories, task.run, *message.args, **message.kwargs)
    return lambda: context.run(task.run, *message.args, **message.kwargs)
