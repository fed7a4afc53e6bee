"""A cross-process doorbell: Unix datagram sockets in a directory, one per waiter.

A waiter binds a socket named ``<channel>-<pid>-<random>`` in the directory and blocks on it (or
registers it with its event loop). A ringer sends one byte to every socket of the channel after it
committed the change the waiters care about. Nothing polls: an idle waiter sleeps in the kernel.

Sends never block: a full socket already has a wake-up pending, so the byte is simply dropped. A
socket file nobody is bound to any more (its process died) refuses the byte and is removed.

Unix socket addresses are limited to about 100 bytes. A directory with a longer path is reached
through ``/proc/self/fd/<fd>`` where Linux offers it; elsewhere such a doorbell is unavailable and
callers fall back to timeouts.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
from collections.abc import Hashable

#: Longest socket path used directly (macOS allows 104 bytes, Linux 108).
_MAX_ADDRESS = 100
_RING = b"\x01"


class Doorbell:
    """The doorbell of one directory. Thread-safe; belongs to the process that opened it."""

    def __init__(self, directory: str) -> None:
        """Create ``directory`` if needed. Raises OSError when no doorbell can work there."""
        if not hasattr(socket, "AF_UNIX"):
            raise OSError("Unix domain sockets are not available")
        os.makedirs(directory, exist_ok=True)
        self.directory = directory
        self._dir_fd: int | None = None
        self._prefix = self._address_prefix(directory)
        self._sender = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._sender.setblocking(False)
        self._pid = os.getpid()

    def _address_prefix(self, directory: str) -> str:
        """How socket addresses in ``directory`` are spelled so they fit the address limit."""
        if len(os.fsencode(directory)) + 40 <= _MAX_ADDRESS:
            return directory
        if not os.path.isdir("/proc/self/fd"):
            raise OSError(f"doorbell directory path too long for a socket address: {directory}")
        # An open descriptor of the directory makes a short alias of any long path.
        self._dir_fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
        return f"/proc/self/fd/{self._dir_fd}"

    def address(self, name: str) -> str:
        """The socket address of entry ``name``."""
        return f"{self._prefix}/{name}"

    def ring(self, channel: str) -> None:
        """Wake every waiter of ``channel``. Never blocks and never raises."""
        try:
            names = os.listdir(self.directory)
        except OSError:
            return
        start = f"{channel}-"
        for name in names:
            if name.startswith(start):
                self._send(name)

    def _send(self, name: str) -> None:
        try:
            self._sender.sendto(_RING, self.address(name))
        except BlockingIOError:
            pass  # its queue is full, so a wake-up is pending already
        except ConnectionRefusedError:
            # Nobody is bound to it: the waiter died without cleaning up.
            with contextlib.suppress(OSError):
                os.unlink(os.path.join(self.directory, name))
        except OSError:
            pass  # vanished between listing and sending, or not a socket: not ours to fix

    def listen(self, channel: str) -> Listener:
        """A new bound socket on ``channel``; rings from now on are kept until consumed."""
        return Listener(self, channel)

    def close(self) -> None:
        """Close the sending socket and the directory descriptor."""
        self._sender.close()
        if self._dir_fd is not None and os.getpid() == self._pid:
            with contextlib.suppress(OSError):
                os.close(self._dir_fd)
            self._dir_fd = None


class Listener:
    """One bound, non-blocking socket in the doorbell directory, removed again on close."""

    def __init__(self, bell: Doorbell, channel: str) -> None:
        self.name = f"{channel}-{os.getpid()}-{os.urandom(6).hex()}"
        self._path = os.path.join(bell.directory, self.name)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        try:
            self.sock.bind(bell.address(self.name))
        except OSError:
            self.sock.close()
            raise
        self.sock.setblocking(False)

    def drain(self) -> bool:
        """Consume pending rings; True if there was at least one."""
        rang = False
        while True:
            try:
                self.sock.recv(64)
            except (BlockingIOError, InterruptedError):
                return rang
            except OSError:
                return rang
            rang = True

    def wait(self, timeout: float | None) -> bool:
        """Block until rung or ``timeout`` seconds passed; True if rung. Consumes the rings."""
        if self.drain():
            return True
        if timeout is not None and timeout <= 0:
            return False
        self.sock.settimeout(timeout)
        try:
            self.sock.recv(64)
        except TimeoutError:
            return False
        finally:
            self.sock.setblocking(False)
        self.drain()
        return True

    def close(self) -> None:
        """Unbind: close the socket and remove its file."""
        self.sock.close()
        with contextlib.suppress(OSError):
            os.unlink(self._path)


class AsyncBell:
    """A listener watched by one event loop, counting rings so that none is missed.

    ``generation`` grows on every ring. A caller reads it *before* looking at the store and later
    waits for it to differ: a ring that came in between is not lost, it just returns at once.
    """

    def __init__(self, bell: Doorbell, channel: str, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.generation = 0
        self._listener = bell.listen(channel)
        self._waiters: set[asyncio.Future[None]] = set()
        self._marks: dict[Hashable, int] = {}
        self._closed = False
        loop.add_reader(self._listener.sock.fileno(), self._on_ring)

    def _on_ring(self) -> None:
        self._listener.drain()
        self.generation += 1
        self._wake_all()

    def _wake_all(self) -> None:
        for waiter in self._waiters:
            if not waiter.done():
                waiter.set_result(None)

    def mark(self, key: Hashable, generation: int) -> None:
        """Remember for ``key`` that the store was last found empty as of ``generation``."""
        self._marks[key] = min(self._marks.get(key, generation), generation)

    def take_mark(self, key: Hashable) -> int:
        """The generation remembered for ``key`` (the current one if none), forgetting it."""
        return self._marks.pop(key, self.generation)

    async def wait(self, seen: int, timeout: float | None) -> None:
        """Return once ``generation`` differs from ``seen``, or after ``timeout`` seconds."""
        if self.generation != seen or self._closed:
            return
        waiter: asyncio.Future[None] = self.loop.create_future()
        self._waiters.add(waiter)
        try:
            await asyncio.wait({waiter}, timeout=timeout)
        finally:
            self._waiters.discard(waiter)
            waiter.cancel()

    def close(self) -> None:
        """Stop watching and unbind. Must run on the bell's loop (or after it closed)."""
        if self._closed:
            return
        self._closed = True
        if not self.loop.is_closed():
            self.loop.remove_reader(self._listener.sock.fileno())
        self._listener.close()
        self._wake_all()

    def close_threadsafe(self) -> None:
        """Close from any thread: on the loop if it still runs, else right here."""
        if not self.loop.is_running() or _running_loop() is self.loop:
            self.close()
            return
        try:
            self.loop.call_soon_threadsafe(self.close)
        except RuntimeError:  # the loop closed meanwhile
            self.close()


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None

