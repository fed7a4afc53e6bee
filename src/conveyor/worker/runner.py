"""Runs one task function: coroutines on the event loop, plain functions in a thread."""

from __future__ import annotations

import asyncio
import contextvars
import functools
from typing import Any

from ..handoff import Handoff
from ..message import Message
from ..task import Request, Task, set_request


class Runner:
    """Calls tasks with their request context set. ``runaway`` becomes True when a sync task
    was abandoned past its time limit (see :mod:`conveyor.middleware.time_limits`): its thread
    cannot be stopped, so a process-pool child exits after settling."""

    def __init__(self, threads: int) -> None:
        self.pool = Handoff(threads, "task")
        self.runaway = False

    async def call(self, task: Task[Any, Any], message: Message, attempt: int) -> Any:
        request = Request(message.id, message.task, message.args, message.kwargs,
                          message.retries, attempt, message.queue, message.eta, message.options)
        if task.is_async:
            set_request(request)
            return await task.run(*message.args, **message.kwargs)
        return await self._in_thread(task, message, request)

    def _in_thread(self, task: Task[Any, Any], message: Message,
                   request: Request) -> asyncio.Future[Any]:
        context = contextvars.copy_context()
        context.run(set_request, request)
        return self.pool.call(functools.partial(context.run, task.run, *message.args,
                                                **message.kwargs))

    def close(self) -> None:
        self.pool.close(wait=False)
