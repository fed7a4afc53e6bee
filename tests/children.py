"""Child processes for tests that need a store used from several OS processes at once."""

from __future__ import annotations

import contextlib
import os
import queue
import signal
import subprocess
import sys
import threading
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


class Child:
    """A child process whose stdout lines arrive on a queue (read by a thread, never blocking).

    Subclasses set ``code``: the ``python -c`` program that runs the child side.
    """

    code = ""

    def __init__(self, *argv: str, extra_env: dict[str, str] | None = None) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", self.code, *argv], cwd=ROOT, stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env={**os.environ, "PYTHONPATH": str(ROOT), **(extra_env or {})},
        )
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            self.lines.put(raw.decode().rstrip("\n"))
        self.lines.put(None)

    def line(self, timeout: float = 20.0) -> str:
        got = self.lines.get(timeout=timeout)
        if got is None:
            raise AssertionError(f"child exited with {self.proc.wait()} before writing a line")
        return got

    def tell(self, text: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(text.encode() + b"\n")
        self.proc.stdin.flush()

    def rest(self, timeout: float = 30.0) -> list[str]:
        """Every remaining line, once the child exits."""
        assert self.proc.wait(timeout) == 0
        lines: list[str] = []
        while (got := self.lines.get(timeout=5)) is not None:
            lines.append(got)
        return lines

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.kill()
            self.proc.wait()
        self.reader.join(5)
        for pipe in (self.proc.stdin, self.proc.stdout):
            if pipe is not None:
                with contextlib.suppress(OSError):
                    pipe.close()
