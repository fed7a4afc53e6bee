"""mypy accepts correct calls (tests/typing) and rejects wrong arguments to ``delay``."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytestmark = pytest.mark.timeout(180)

BAD = """
from conveyor import Conveyor
app = Conveyor("t", broker="memory://")

@app.task
def send_email(user_id: int, message: str) -> str:
    return message

send_email.delay("x")
send_email.delay(1, 2)
value: int = send_email.delay(1, "a").get()

from conveyor import chain

@app.task
def add(x: int, y: int) -> int:
    return x + y
text: str = chain(add.s(1, 2), add.s(3)).apply_async().get()
"""


def test_mypy_rejects_wrong_arguments(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text(textwrap.dedent(BAD))
    run = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-incremental", str(bad)],
        capture_output=True, text=True, check=False,
    )
    assert run.returncode == 1, run.stdout
    errors = [line for line in run.stdout.splitlines() if ": error:" in line]
    lines = {line.split(":")[1] for line in errors}
    assert lines == {"9", "10", "11", "18"}, run.stdout
    assert 'incompatible type "str"; expected "int"' in run.stdout
    assert 'expression has type "str", variable has type "int"' in run.stdout
    assert 'expression has type "int", variable has type "str"' in run.stdout  # a chain
