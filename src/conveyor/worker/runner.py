"""Runs one task function: coroutines on the event loop, plain functions in a thread."""

from __future__ import annotations

import asyncio
import contextvars
import threading
from typing import Any

from ..handoff import Handoff
from ..message import Message
from ..task import Request, Task, set_request
from .interrupt import Running, drive


class Runner:
    """Calls tasks with their request context set. ``running`` maps the ids of calls in
    progress to their :class:`~conveyor.worker.interrupt.Running` handles (time limits and
    terminate interrupt them). ``runaway`` becomes True when a sync task was stopped while its
    thread runs on (it cannot be killed), so a process-pool child exits after settling."""

    def __init__(self, threads: int) -> None:
        self.pool = Handoff(threads, "task")
        self.runaway = False
        self.running: dict[str, Running] = {}

    async def call(self, task: Task[Any, Any], message: Message, attempt: int) -> Any:
        request = Request(message.id, message.task, message.args, message.kwargs,
                          message.retries, attempt, message.queue, message.eta, message.options)
        running = self.running[message.id] = Running()
        try:
            if task.is_async:
                set_request(request)  # before the task is made: it copies this context
                running.task = asyncio.ensure_future(
                    drive(task.run(*message.args, **message.kwargs), running))
                running.future = running.task
            else:
                running.future = self._in_thread(task, message, request, running)
            return await running.outcome()
        finally:
            self.running.pop(message.id, None)

    def _in_thread(self, task: Task[Any, Any], message: Message, request: Request,
                   running: Running) -> asyncio.Future[Any]:
        context = contextvars.copy_context()
        context.run(set_request, request)

        def call() -> Any:
            with running.lock:
                running.thread = threading.get_ident()
            try:
                return context.run(task.run, *message.args, **message.kwargs)
            finally:  # a pool thread must not receive an exception meant for this call later
                with running.lock:
                    running.thread = None

        return self.pool.call(call)

    def close(self) -> None:
        self.pool.close(wait=False)
