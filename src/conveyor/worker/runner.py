"""Runs one task function: coroutines on the event loop, plain functions in a thread."""

from __future__ import annotations

import asyncio
import contextvars
import functools
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from ..message import Message
from ..task import Request, Task, set_request


class Runner:
    """Calls tasks with their request context set. ``runaway`` becomes True when a sync task
    was abandoned past its time limit (see :mod:`conveyor.middleware.time_limits`): its thread
    cannot be stopped, so a process-pool child exits after settling."""

    def __init__(self, threads: int) -> None:
        self.pool = ThreadPoolExecutor(max_workers=max(threads, 1), thread_name_prefix="task")
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
        call = functools.partial(context.run, task.run, *message.args, **message.kwargs)
        return asyncio.get_running_loop().run_in_executor(self.pool, call)

    def close(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)
