"""A small shop's background work, as a web app would hand it to Conveyor.

Run a worker for it with ``conveyor worker -A examples.quickstart.shop -Q default,emails``.
"""

from __future__ import annotations

import asyncio
import csv
import os
import random
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from PIL import Image

from conveyor import Conveyor, Task

OUT = Path(os.environ.get("SHOP_OUT", "demo-out"))
app = Conveyor("shop", broker=os.environ.get("CONVEYOR_BROKER_URL", f"sqlite:///{OUT}/conveyor.db"))


@app.task(queue="emails", retries=3, retry_backoff=True)
def send_email(user_id: int, message: str) -> str:
    """Pretend to talk to an SMTP server; the outbox file is the proof of delivery."""
    time.sleep(0.05)
    with open(OUT / "outbox.txt", "a") as outbox:
        outbox.write(f"to user {user_id}: {message}\n")
    return f"sent to user {user_id}"


@app.task
def make_thumbnail(path: str, size: int = 128) -> dict[str, Any]:
    """Resize an image with Pillow, keeping its aspect ratio."""
    source = Path(path)
    with Image.open(source) as image:
        original = image.size
        image.thumbnail((size, size))
        target = source.with_name(f"{source.stem}.thumb.png")
        image.save(target)
        return {"file": str(target), "from": list(original), "to": list(image.size)}


@app.task
def sales_report(orders: int, seed: int = 7) -> dict[str, Any]:
    """Aggregate a day of (generated) orders into a CSV report."""
    rng = random.Random(seed)
    rows = [(f"order-{i}", rng.choice(["books", "games", "tools"]), rng.randint(5, 500))
            for i in range(orders)]
    totals: dict[str, int] = {}
    for _, category, amount in rows:
        totals[category] = totals.get(category, 0) + amount
    with open(OUT / "report.csv", "w", newline="") as fh:
        csv.writer(fh).writerows([("category", "total"), *sorted(totals.items())])
    return {"orders": orders, "revenue": sum(totals.values()), "by_category": totals}


@app.task(bind=True, retries=3, retry_backoff=0.5, retry_jitter=False)
def charge_card(self: Task[Any, Any], order_id: str) -> str:
    """Fails on its first attempt (a flaky payment gateway), succeeds on the retry."""
    if self.request.retries == 0:
        raise ConnectionError("payment gateway timed out")
    return f"{order_id} charged after {self.request.retries} retry"


@app.task
def reminder(user_id: int, sent_at: float) -> str:
    """A delayed task: runs no earlier than its countdown."""
    return f"reminded user {user_id} {time.time() - sent_at:.1f}s after it was queued"


@app.task
async def page_size(url: str) -> int:
    """An async task: fetch a page over HTTP with asyncio streams and return its size."""
    parts = urlsplit(url)
    reader, writer = await asyncio.open_connection(parts.hostname, parts.port or 80)
    writer.write(f"GET {parts.path or '/'} HTTP/1.0\r\nHost: {parts.hostname}\r\n\r\n".encode())
    await writer.drain()
    response = await reader.read()
    writer.close()
    await writer.wait_closed()
    return len(response.partition(b"\r\n\r\n")[2])
