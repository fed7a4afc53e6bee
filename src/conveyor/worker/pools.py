"""Pools: how a worker command turns into processes.

- ``process`` (default): a supervisor starts N child processes, each a one-task-at-a-time worker
  with its own broker connection. It forwards SIGTERM/SIGINT to them and replaces a child that
  dies (a crash, an OOM kill, or a child that exits after a task overran its hard time limit),
  waiting longer each time children die young, so a crashing child never spins.
- ``thread``: one process running up to N sync tasks in threads (async tasks on its loop).
- ``async``: one process running up to N tasks concurrently; meant for ``async def`` tasks.

With per-queue slots (``-Q emails:4,reports:1,default``, see :mod:`conveyor.worker.groups`) the
process pool gives each child one group's queues: four children consume only ``emails``, one
``reports``, the rest of ``-c`` the others, and a replaced child keeps its group.

A child stopped by ``conveyor control shutdown`` exits with :data:`EXIT_SHUTDOWN`; the
supervisor then stops the others gracefully and exits instead of replacing it.

A child that cannot start (its application does not import, a bad setting) exits with
:data:`EXIT_CONFIG` after printing why; the supervisor then stops the whole worker with that one
error and a non-zero exit instead of restarting children forever. The first child is started
alone and the others once it is consuming, so such an error is printed once.
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..clock import SYSTEM, Clock
from .groups import QueueGroup

if TYPE_CHECKING:
    from ..app import Conveyor
    from ..schedule.run import Beside
    from .worker import Worker

log = logging.getLogger("conveyor.worker")
POOLS = ("process", "thread", "async")

#: The exit code of a process that could not start (sysexits' EX_CONFIG).
EXIT_CONFIG = 78
#: The exit code of a process stopped by a remote shutdown (``conveyor control shutdown``).
EXIT_SHUTDOWN = 100
#: A child that lived less than this counts as dying young; restarts back off up to the cap.
YOUNG, BACKOFF_CAP = 10.0, 30.0
#: How long the first child may take to import the application and start consuming.
START_TIMEOUT = 120.0


def default_name() -> str:
    """``host.pid``: unique per machine and process (the supervisor's pid for a pool)."""
    return f"{socket.gethostname()}.{os.getpid()}"


@dataclass(frozen=True, slots=True)
class Options:
    """What every process of one worker command shares."""

    queues: Sequence[str]
    concurrency: int
    pool: str
    grace: float
    lease: float | None = None
    prefetch: int | None = None
    name: str | None = None
    banner: bool = False
    app_path: str = ""
    groups: Sequence[QueueGroup] = ()
    beat: bool = False  # also run a beat (periodic tasks) in this process


def run_in_process(app: Conveyor, options: Options, *, parent: int | None = None,
                   ready_fd: int | None = None) -> None:
    """Run one Worker in this process until a signal (or the parent's death) stops it."""
    import asyncio  # here, not at the top: the supervisor never needs an event loop

    from .startup import reach_stores

    exit_code: list[int] = []  # what the worker asked to exit with (a remote shutdown)

    async def main() -> None:
        worker = _worker(app, options, parent)
        worker.install_signal_handlers()
        watch = asyncio.ensure_future(_watch_parent(worker, parent)) if parent else None
        try:
            if await reach_stores(app, worker.stopping):
                await _serve(app, worker, options, ready_fd)
        finally:
            exit_code.append(worker.exit_code)
            if watch is not None:
                watch.cancel()
            await app.aclose()

    asyncio.run(main())
    code = exit_code[-1] if exit_code else 0
    _exit_past_stuck_threads(code)
    if code:
        raise SystemExit(code)


def _worker(app: Conveyor, options: Options, parent: int | None) -> Worker:
    from .worker import Worker

    size = 1 if options.pool == "process" else options.concurrency
    groups = options.groups if options.pool != "process" else ()
    return Worker(app, options.queues, concurrency=size, prefetch=options.prefetch,
                  grace=options.grace, lease=options.lease, name=options.name,
                  pool=options.pool, exit_on_runaway=parent is not None, groups=groups,
                  inline=options.pool == "process" and not options.beat)


async def _serve(app: Conveyor, worker: Worker, options: Options, ready_fd: int | None) -> None:
    """Run ``worker`` (and a beat beside it, if asked) until it stops."""
    import asyncio

    started = asyncio.ensure_future(_when_started(app, worker, options, ready_fd))
    beat = _beside(app) if options.beat else None
    try:
        await worker.run()
    finally:
        started.cancel()
        if beat is not None:  # stopped after the worker, so it hands the lead on
            await beat.stop()


async def _when_started(app: Conveyor, worker: Worker, opts: Options, fd: int | None) -> None:
    import asyncio

    from ..options import seconds  # here: the supervisor never resolves task options
    from .banner import banner

    await asyncio.sleep(0)  # run() has opened the consumer and started the middleware
    if opts.banner:  # once per worker command: the first process of a pool shows it
        log.info("%s", banner(app, worker, opts))
        limits = {name: seconds(task.options.time_limit, "time_limit")
                  for name, task in app.tasks.items()}
        for warning in app.broker.startup_warnings(limits):
            log.warning("%s", warning)
    if fd is not None:
        with contextlib.suppress(OSError):
            os.write(fd, b"ready\n")
            os.close(fd)


def _beside(app: Conveyor) -> Beside:
    from ..schedule.run import Beside

    return Beside(app)


def _exit_past_stuck_threads(code: int = 0) -> None:
    """Leave even if a sync task's thread is still running (stopped fast, or past its time
    limit): its message was already given back or settled, and a thread cannot be killed."""
    if any(t.is_alive() and not t.daemon for t in threading.enumerate()
           if t is not threading.main_thread()):
        log.warning("leaving %d task thread(s) behind", threading.active_count() - 1)
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


async def _watch_parent(worker: Worker, parent: int) -> None:
    """Stop when the supervisor is gone, so no orphan keeps consuming: woken by a pidfd where
    the kernel has them (Linux 5.3+), else by looking once a second."""
    import asyncio

    try:
        fd = os.pidfd_open(parent)
    except (AttributeError, OSError):
        fd = None
    if fd is not None:
        gone: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        def readable() -> None:
            if not gone.done():
                gone.set_result(None)

        asyncio.get_running_loop().add_reader(fd, readable)
        try:
            await gone
        finally:
            asyncio.get_running_loop().remove_reader(fd)
            os.close(fd)
    while os.getppid() == parent:  # noqa: ASYNC110
        await asyncio.sleep(1.0)
    log.warning("supervisor %d is gone; stopping", parent)
    await worker.stop()


@dataclass(slots=True)
class _Child:
    proc: subprocess.Popen[bytes]
    started: float
    argv: list[str]


@dataclass(slots=True)
class Supervisor:
    """Keeps ``processes`` children running ``child_argv`` until told to stop; with ``plan``,
    child ``i`` runs ``plan[i]`` (its queue group) instead, and its replacement too."""

    child_argv: list[str]
    processes: int
    clock: Clock = SYSTEM
    plan: list[list[str]] = field(default_factory=list)
    children: dict[int, _Child] = field(default_factory=dict)
    stops: int = 0
    failed: str | None = None
    _young_deaths: int = 0
    beat: bool = False  # one child at a time (the first, then its replacement) runs a beat
    _beat_pid: int | None = None

    def run(self) -> int:
        """Start the children and keep them running; the exit code of the worker command."""
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._forward)
        argvs = self.plan or [self.child_argv] * self.processes
        if self._start_first(argvs[0]):
            for argv in argvs[1:]:
                self._spawn(argv)
        while self.children:
            try:
                pid, status = os.wait()
            except ChildProcessError:
                break
            self._reap(pid, os.waitstatus_to_exitcode(status))
        return 1 if self.failed else 0

    def _start_first(self, argv: list[str]) -> bool:
        """Start one child and wait until it consumes; False if it could not start."""
        while not self.stops:
            code = self._try_first(argv)
            if code is None:
                return True
            if code == EXIT_CONFIG:  # it printed why; stopping here keeps that the only line
                self.failed = "start-up"
                return False
            log.warning("worker process exited with %d while starting; starting another", code)
            self._backoff(young=True)
        return False

    def _try_first(self, argv: list[str]) -> int | None:
        """None once the child reports it consumes (or is still starting at the timeout, or
        a stop came), else its exit code."""
        read, write = os.pipe()
        child = self._spawn(argv, ["--banner", "--ready-fd", str(write)], keep=write)
        os.close(write)
        deadline = self.clock.monotonic() + START_TIMEOUT
        try:
            while self.clock.monotonic() < deadline and not self.stops:
                readable, _, _ = select.select([read], [], [], 0.2)
                if readable and os.read(read, 16):
                    return None
                code = child.proc.poll()
                if code is not None:
                    self.children.pop(child.proc.pid, None)
                    return code
            return None
        finally:
            os.close(read)

    def _spawn(self, base: list[str], extra: Sequence[str] = (),
               keep: int | None = None) -> _Child:
        with_beat = self.beat and self._beat_pid not in self.children
        argv = [*base, *extra, *(["--beat"] if with_beat else []),
                "--parent-pid", str(os.getpid())]
        # Own session: a terminal's Ctrl-C reaches only the supervisor, which forwards it once;
        # reaching the children directly too would count as a second, fast-stop signal.
        proc = subprocess.Popen(argv, start_new_session=True,
                                pass_fds=() if keep is None else (keep,))
        child = _Child(proc, self.clock.monotonic(), base)
        self.children[proc.pid] = child
        if with_beat:
            self._beat_pid = proc.pid
        return child

    def _reap(self, pid: int, code: int) -> None:
        child = self.children.pop(pid, None)
        if child is None:
            return
        child.proc.returncode = code
        if self.stops or self.failed:
            return
        if code == EXIT_CONFIG:
            log.error("a worker process could not start; stopping the worker")
            self.failed = "start-up"
            self._forward(signal.SIGTERM, None)
            return
        if code == EXIT_SHUTDOWN:
            log.info("worker process %d was shut down remotely; stopping the worker", pid)
            self._forward(signal.SIGTERM, None)
            return
        log.warning("worker process %d exited with %d; starting another", pid, code)
        self._backoff(young=self.clock.monotonic() - child.started < YOUNG)
        if not self.stops:
            self._spawn(child.argv)

    def _backoff(self, young: bool) -> None:
        """Wait before a restart: 0 after a child that lived, doubling after young deaths."""
        self._young_deaths = self._young_deaths + 1 if young else 0
        if self._young_deaths:
            delay = min(BACKOFF_CAP, 0.5 * 2 ** (self._young_deaths - 1))
            log.warning("children die young (%d in a row); waiting %.1fs", self._young_deaths,
                        delay)
            time.sleep(delay)

    def _forward(self, signum: int, _frame: object) -> None:
        self.stops += 1
        for child in self.children.values():
            with contextlib.suppress(ProcessLookupError):
                child.proc.send_signal(signum)


def child_plan(options: Options, *, loglevel: str, logfile: str | None) -> list[list[str]]:
    """One command line per child: each slot of each queue group (none without groups)."""
    return [child_argv(options, loglevel=loglevel, logfile=logfile, queues=group.queues)
            for group in options.groups for _ in range(group.slots)]


def child_argv(options: Options, *, loglevel: str, logfile: str | None,
               queues: Sequence[str] | None = None) -> list[str]:
    """The command line of one process-pool child (consuming ``queues``, default: all)."""
    argv = [sys.executable, "-m", "conveyor.worker.child", "-A", options.app_path,
            "-Q", ",".join(queues or options.queues), "--grace", str(options.grace),
            "-l", loglevel,
            "--pool-size", str(options.concurrency)]
    shown = " ".join(g.describe() for g in options.groups) or None  # the banner's queues
    for flag, value in (("--prefetch", options.prefetch), ("--lease", options.lease),
                        ("--name", options.name), ("--logfile", logfile), ("--groups", shown)):
        if value is not None:
            argv += [flag, str(value)]
    return argv
