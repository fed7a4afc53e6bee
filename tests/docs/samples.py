"""Runs the Python samples of one Markdown page, in order, in one namespace:
``python -m tests.docs.samples docs/PAGE.md`` (from a scratch directory: samples write files).

Every fenced ``python`` block runs, top-level ``await`` included, unless a comment on the line
before it says otherwise:

- ``<!-- sample: skip REASON -->``: not run (REASON is required: a settings file of another
  framework, a fragment of a longer file, ...);
- ``<!-- sample: file NAME -->``: written to NAME in the current directory instead of run, so
  later blocks import it and a worker can load it;
- ``<!-- sample: worker ARGS -->``: before the block, start ``conveyor worker ARGS`` here (a
  real worker process, stopped when the page ends); the block may then ``get()`` results.

Samples check themselves with ``assert``; a sample that raises fails the page.
"""

from __future__ import annotations

import ast
import asyncio
import inspect
import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

FENCE = re.compile(r"^```python[^\n]*\n(.*?)^```", re.MULTILINE | re.DOTALL)
MARK = re.compile(r"<!--\s*sample:\s*(\w+)\s*(.*?)\s*-->\s*$")


@dataclass
class Block:
    code: str
    line: int
    mark: str = ""
    argument: str = ""


def blocks(text: str) -> list[Block]:
    found = []
    for match in FENCE.finditer(text):
        line = text.count("\n", 0, match.start()) + 1
        before = text[:match.start()].rstrip("\n").rsplit("\n", 1)[-1]
        mark = MARK.search(before)
        found.append(Block(match.group(1), line, *(mark.groups() if mark else ("", ""))))
    return found


def run_page(path: Path) -> int:
    namespace = sys.modules["__main__"].__dict__
    sys.path.insert(0, os.getcwd())
    workers: list[subprocess.Popen[bytes]] = []
    ran = 0
    try:
        for block in blocks(path.read_text()):
            where = f"{path}:{block.line}"
            if block.mark == "skip":
                if not block.argument:
                    raise SystemExit(f"{where}: a skipped sample must say why")
                continue
            if block.mark == "file":
                ast.parse(block.code, where)
                Path(block.argument).parent.mkdir(parents=True, exist_ok=True)
                Path(block.argument).write_text(block.code)
                continue
            if block.mark == "worker":
                workers.append(start_worker(block.argument.split()))
            elif block.mark:
                raise SystemExit(f"{where}: unknown sample mark {block.mark!r}")
            execute(block.code, where, namespace)
            ran += 1
    finally:
        for worker in workers:
            worker.send_signal(signal.SIGTERM)
            worker.wait(30)
    return ran


def execute(code: str, where: str, namespace: dict[str, object]) -> None:
    compiled = compile(code, where, "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
    if compiled.co_flags & inspect.CO_COROUTINE:
        asyncio.run(eval(compiled, namespace))
    else:
        exec(compiled, namespace)


def start_worker(args: list[str]) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([os.getcwd(), *sys.path])}
    with Path("worker.log").open("wb") as log:  # the child keeps its own copy of the file
        proc = subprocess.Popen([sys.executable, "-m", "conveyor", "worker", *args, "-l",
                                 "info"], stderr=log, env=env)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # the banner says "ready" once it consumes
        if b" ready" in Path("worker.log").read_bytes() or proc.poll() is not None:
            break
        time.sleep(0.05)
    if proc.poll() is not None:
        raise SystemExit(f"worker {args} exited: {Path('worker.log').read_text()}")
    return proc


if __name__ == "__main__":
    count = run_page(Path(sys.argv[1]))
    print(f"{sys.argv[1]}: {count} sample(s) ran")
