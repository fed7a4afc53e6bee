"""The task of the soak run (``python -m bench.soak``): sleeps a little and leaves its id in a
per-process file under ``SOAK_DIR``, so the driver counts completions without the broker."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from conveyor import Conveyor, Task

app = Conveyor("soak")


@app.task(bind=True)
def chore(self: Task[Any, Any], seconds: float) -> None:
    time.sleep(seconds)
    with open(Path(os.environ["SOAK_DIR"]) / f"done-{os.getpid()}", "a") as fh:
        fh.write(self.request.id + "\n")
