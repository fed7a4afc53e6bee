"""Pools: how a worker command turns into processes.

- ``process`` (default): a supervisor starts N child processes, each a one-task-at-a-time worker
  with its own broker connection. It forwards SIGTERM/SIGINT to them and replaces a child that
  dies (a crash, an OOM kill, or a child that exits after a task overran its hard time limit).
- ``thread``: one process running up to N sync tasks in threads (async tasks on its loop).
- ``async``: one process running up to N tasks concurrently; meant for ``async def`` tasks.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..app import Conveyor
    from .worker import Worker

log = logging.getLogger("conveyor.worker")
POOLS = ("process", "thread", "async")


def run_in_process(app: Conveyor, queues: Sequence[str], concurrency: int, *,
                   grace: float, lease: float | None, prefetch: int | None = None,
                   parent: int | None = None) -> None:
    """Run one Worker in this process until a signal (or the parent's death) stops it."""
    import asyncio  # here, not at the top: the supervisor never needs an event loop

    from .worker import Worker

    async def main() -> None:
        worker = Worker(app, queues, concurrency=concurrency, prefetch=prefetch, grace=grace,
                        lease=lease, exit_on_runaway=parent is not None)
        worker.install_signal_handlers()
        watch = asyncio.ensure_future(_watch_parent(worker, parent)) if parent else None
        try:
            await worker.run()
        finally:
            if watch is not None:
                watch.cancel()
            await app.aclose()

    asyncio.run(main())
    _exit_past_stuck_threads()


def _exit_past_stuck_threads() -> None:
    """Leave even if a sync task's thread is still running (stopped fast, or past its time
    limit): its message was already given back or settled, and a thread cannot be killed."""
    if any(t.is_alive() and not t.daemon for t in threading.enumerate()
           if t is not threading.main_thread()):
        log.warning("leaving %d task thread(s) behind", threading.active_count() - 1)
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)


async def _watch_parent(worker: Worker, parent: int) -> None:
    """Stop when the supervisor is gone, so no orphan keeps consuming."""
    import asyncio

    # No event exists for a parent's death, so look once a second.
    while os.getppid() == parent:  # noqa: ASYNC110
        await asyncio.sleep(1.0)
    log.warning("supervisor %d is gone; stopping", parent)
    await worker.stop()


class Supervisor:
    """Keeps ``processes`` children running ``child_argv`` until told to stop."""

    def __init__(self, child_argv: list[str], processes: int) -> None:
        self.child_argv = child_argv
        self.processes = processes
        self.children: dict[int, tuple[subprocess.Popen[bytes], float]] = {}
        self.stops = 0

    def run(self) -> int:
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._forward)
        for _ in range(self.processes):
            self._spawn()
        while self.children:
            pid, status = os.wait()
            self._reap(pid, os.waitstatus_to_exitcode(status))
        return 0

    def _spawn(self) -> None:
        argv = [*self.child_argv, "--parent-pid", str(os.getpid())]
        # Own session: a terminal's Ctrl-C reaches only the supervisor, which forwards it once;
        # reaching the children directly too would count as a second, fast-stop signal.
        proc = subprocess.Popen(argv, start_new_session=True)
        self.children[proc.pid] = (proc, time.monotonic())

    def _reap(self, pid: int, code: int) -> None:
        entry = self.children.pop(pid, None)
        if entry is None:
            return
        proc, started = entry
        proc.returncode = code
        if self.stops:
            return
        log.warning("worker process %d exited with %d; starting another", pid, code)
        if time.monotonic() - started < 1.0:
            time.sleep(1.0)  # a child that dies at once would otherwise spin
        self._spawn()

    def _forward(self, signum: int, _frame: object) -> None:
        self.stops += 1
        for proc, _ in self.children.values():
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signum)


def child_argv(app_path: str, queues: Sequence[str], *, grace: float, lease: float | None,
               prefetch: int | None, loglevel: str) -> list[str]:
    """The command line of one process-pool child."""
    argv = [sys.executable, "-m", "conveyor.worker.child", "-A", app_path,
            "-Q", ",".join(queues), "--grace", str(grace), "-l", loglevel]
    if prefetch is not None:
        argv += ["--prefetch", str(prefetch)]
    return argv if lease is None else [*argv, "--lease", str(lease)]
