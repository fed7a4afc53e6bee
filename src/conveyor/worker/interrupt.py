"""Interrupting a task while it runs: the soft time limit, the hard limit and terminate.

A :class:`Running` is one task call in progress. :meth:`Running.interrupt` raises an exception
inside the task, which may catch it (the soft limit); :meth:`Running.stop` ends the call now
with an exception for the caller (the hard limit, terminate).

- An ``async def`` task runs in its own asyncio task, driven by :func:`drive`, which turns a
  cancellation that carries an exception into that exception at the task's ``await``. Stopping
  it is a plain cancellation.
- A plain function runs in a thread. An exception is raised in it with CPython's
  ``PyThreadState_SetAsyncExc``: it takes effect at the thread's next Python instruction, so a
  thread blocked in C (``time.sleep``, a socket read, a lock) sees it only once that call returns.
  Stopping one also stops waiting for it at once; its thread may live on, which is why a process
  pool child then exits (:attr:`Runner.runaway`).
"""

from __future__ import annotations

import asyncio
import threading
import types
from collections.abc import Coroutine, Generator
from typing import Any


class Running:
    """One task call in progress (see the module docstring)."""

    def __init__(self) -> None:
        self.thread: int | None = None  # the thread's ident while a sync call runs in it
        self.lock = threading.Lock()  # held while the thread is set, cleared or raised into
        self.task: asyncio.Task[Any] | None = None  # an async call's own task
        self.future: asyncio.Future[Any] | None = None  # what the runner awaits
        self.pending: BaseException | None = None  # to throw into the coroutine
        self.stopped: BaseException | None = None  # what the stopped call raises
        self._halted = asyncio.get_running_loop().create_future()  # set by stop()

    def interrupt(self, exc: BaseException) -> None:
        """Raise ``exc`` inside the task at its next chance; it may catch it."""
        if self.task is not None:
            if not self.task.done():
                self.pending = exc
                self.task.cancel()
        else:
            self._raise_in_thread(type(exc))

    def stop(self, exc: BaseException) -> None:
        """End the call now: the runner raises ``exc``. A thread also gets ``exc``'s type raised
        in it (best effort, see the module docstring)."""
        if self.stopped is not None:
            return
        self.stopped = exc
        if not self._halted.done():
            self._halted.set_result(None)
        if self.task is not None:
            self.task.cancel()
        self._raise_in_thread(type(exc))
        if self.future is not None:
            self.future.cancel()

    def _raise_in_thread(self, kind: type[BaseException]) -> None:
        with self.lock:
            if self.thread is not None:
                raise_in_thread(self.thread, kind)

    @property
    def in_thread(self) -> bool:
        """True while a sync call is still running in its thread (it may outlive a stop)."""
        return self.thread is not None

    async def outcome(self) -> Any:
        """Await the call; a stopped one raises what it was stopped with at once, even if it
        goes on (a thread in C code, a coroutine that swallows its cancellation)."""
        assert self.future is not None
        try:
            await asyncio.wait({self.future, self._halted}, return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:  # the worker stops: the call is cancelled with it
            self.future.cancel()
            raise
        if self.future.done() and not self.future.cancelled():
            return self.future.result()
        if self.stopped is not None:
            raise self.stopped from None
        return self.future.result()  # cancelled from elsewhere: CancelledError


def raise_in_thread(ident: int, kind: type[BaseException]) -> bool:
    """Ask CPython to raise ``kind`` in thread ``ident``; False if no such thread runs."""
    import ctypes  # here: only a task past its time limit needs it

    found = ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(ident),
                                                      ctypes.py_object(kind))
    if found > 1:  # more than one thread state matched: undo, as the C API asks
        ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(ident), None)
        return False
    return bool(found)


@types.coroutine
def drive(coro: Coroutine[Any, Any, Any], running: Running) -> Generator[Any, Any, Any]:
    """Run ``coro`` step by step for its asyncio task, so that a cancellation carrying
    ``running.pending`` arrives in ``coro`` as that exception instead of CancelledError."""
    value: Any = None
    error: BaseException | None = None
    while True:
        try:
            step = coro.send(value) if error is None else coro.throw(error)
        except StopIteration as done:
            return done.value
        value, error = None, None
        try:
            value = yield step
        except GeneratorExit:  # the task is being destroyed: close the coroutine with it
            coro.close()
            raise
        except asyncio.CancelledError as cancelled:
            error, running.pending = running.pending or cancelled, None
            if error is not cancelled:
                task = asyncio.current_task()
                if task is not None:
                    task.uncancel()
        except BaseException as exc:  # delivered to the coroutine, as asyncio would
            error = exc
