"""The quick-start demo: a web shop's background work on the embedded SQLite store.

Starts a worker, enqueues the typical jobs (a sign-up e-mail, a thumbnail, a report, a flaky
payment that succeeds on retry, a delayed reminder, an async page fetch), shows their progress
and results, then stops the worker with SIGTERM. Run it with ``make demo``.
"""

from __future__ import annotations

import http.server
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "demo-out"
sys.path.insert(0, str(ROOT))
os.environ["SHOP_OUT"] = str(OUT)

from PIL import Image  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.progress import Progress  # noqa: E402
from rich.table import Table  # noqa: E402

from conveyor import AsyncResult  # noqa: E402
from examples.quickstart import shop  # noqa: E402

console = Console()


def prepare() -> str:
    """A fresh output folder, a photo to shrink, and a local page to fetch."""
    shutil.rmtree(OUT, ignore_errors=True)
    OUT.mkdir()
    photo = OUT / "photo.png"
    Image.radial_gradient("L").resize((1600, 1200)).convert("RGB").save(photo)
    (OUT / "index.html").write_text("<h1>Conveyor shop</h1>" + "<p>hello</p>" * 100)
    return str(photo)


def serve_pages() -> str:
    handler = lambda *a: http.server.SimpleHTTPRequestHandler(*a, directory=str(OUT))  # noqa: E731
    http.server.SimpleHTTPRequestHandler.log_message = lambda *a: None  # type: ignore[method-assign]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return f"http://127.0.0.1:{server.server_address[1]}/index.html"


def start_worker() -> subprocess.Popen[bytes]:
    argv = [sys.executable, "-m", "conveyor", "worker", "-A", "examples.quickstart.shop",
            "-Q", "default,emails", "-c", "2", "-l", "warning"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(argv, cwd=ROOT, env=env)


def enqueue(photo: str, page: str) -> dict[str, AsyncResult[Any]]:
    """What the web app does on each request: queue the work and answer at once."""
    started = time.perf_counter()
    jobs: dict[str, AsyncResult[Any]] = {
        "sign-up e-mail": shop.send_email.delay(42, "Welcome to the shop!"),
        "thumbnail": shop.make_thumbnail.delay(photo),
        "sales report": shop.sales_report.delay(5000),
        "flaky payment": shop.charge_card.delay("order-1001"),
        "delayed reminder": shop.reminder.apply_async((42, time.time()), countdown=2),
        "async page fetch": shop.page_size.delay(page),
    }
    elapsed = (time.perf_counter() - started) * 1000
    console.print(f"queued {len(jobs)} tasks in {elapsed:.1f} ms; the web app answered already")
    return jobs


def follow(jobs: dict[str, AsyncResult[Any]]) -> None:
    with Progress(console=console) as progress:
        bar = progress.add_task("running", total=len(jobs))
        for result in jobs.values():
            result.get(timeout=60)
            progress.advance(bar)
    table = Table("job", "state", "result", title="results")
    for name, result in jobs.items():
        table.add_row(name, str(result.status), repr(result.get(timeout=1)))
    console.print(table)


def main() -> None:
    photo = prepare()
    page = serve_pages()
    worker = start_worker()
    try:
        follow(enqueue(photo, page))
    finally:
        worker.send_signal(signal.SIGTERM)
        code = worker.wait(60)
        console.print(f"worker stopped cleanly (exit code {code})")
    console.print(f"outputs in {OUT.relative_to(ROOT)}/: outbox.txt, photo.thumb.png, report.csv")


if __name__ == "__main__":
    main()
