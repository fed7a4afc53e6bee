"""Handing blocking calls from an event loop to threads, and their results back.

A :class:`Handoff` is a few threads taking calls from one queue. Each result returns to the
caller's loop with a single ``call_soon_threadsafe``: about a third of what
``loop.run_in_executor`` costs per call, which matters on paths taken once per task (the SQLite
store's statements, a sync task's body).
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import queue
import threading
import weakref
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")

_Item = tuple[Callable[[], Any], "asyncio.Future[Any] | None", "asyncio.AbstractEventLoop | None"]


class Handoff:
    """``threads`` threads (started on first use) running submitted calls in arrival order.

    The threads are daemon threads, so a program that used an async store method and never
    closed the store still exits (non-daemon ones would keep it alive, blocked on the queue);
    at exit, a handoff nobody closed finishes what was submitted first (:func:`_drain_all`).
    """

    def __init__(self, threads: int, name: str) -> None:
        self.size = max(threads, 1)
        self.name = name
        self._queue: queue.SimpleQueue[_Item | None] = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        self._closed = False
        _OPEN.add(self)

    def call(self, fn: Callable[[], T]) -> asyncio.Future[T]:
        """Run ``fn`` in a thread; the future resolves on the calling loop."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._put((fn, future, loop))
        return future

    def run_soon(self, fn: Callable[[], object]) -> None:
        """Run ``fn`` in a thread; nobody waits for it (its errors are dropped)."""
        self._put((fn, None, None))

    def _put(self, item: _Item) -> None:
        if self._closed:
            raise RuntimeError(f"{self.name} is closed")
        self._start()
        self._queue.put(item)

    def _start(self) -> None:
        if len(self._threads) == self.size:
            return
        with self._lock:
            while len(self._threads) < self.size:
                thread = threading.Thread(target=self._work, daemon=True,
                                          name=f"{self.name}-{len(self._threads)}")
                thread.start()
                self._threads.append(thread)

    def _work(self) -> None:
        while (item := self._queue.get()) is not None:
            fn, future, loop = item
            try:
                result, failed = fn(), False
            except BaseException as exc:
                result, failed = exc, True
            if future is not None and loop is not None:
                with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                    loop.call_soon_threadsafe(_deliver, future, result, failed)

    def close(self, wait: bool = True) -> None:
        """Finish what was submitted, then stop the threads (joined when ``wait``)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            threads = list(self._threads)
        for _ in threads:
            self._queue.put(None)
        if wait:
            for thread in threads:
                if thread is not threading.current_thread():
                    thread.join()


def _deliver(future: asyncio.Future[Any], result: Any, failed: bool) -> None:
    if future.done():
        return
    if failed:
        future.set_exception(result)
    else:
        future.set_result(result)


_OPEN: weakref.WeakSet[Handoff] = weakref.WeakSet()


@atexit.register
def _drain_all() -> None:
    """Let every handoff still open finish its submitted calls before the interpreter goes."""
    for handoff in list(_OPEN):
        handoff.close(wait=True)
