"""The sign-up's background work: a welcome e-mail and an avatar thumbnail."""

from __future__ import annotations

import os
from email.message import EmailMessage
from pathlib import Path

from PIL import Image

from conveyor import Conveyor

# The store: $CONVEYOR_BROKER_URL (redis://localhost:6379/0 in production), else a SQLite file.
app = Conveyor("signup")
OUT = Path(os.environ.get("SIGNUP_OUT", "signup-out"))


@app.task(queue="emails", retries=3, retry_backoff=True)
def send_email(address: str, subject: str) -> str:
    """Write the welcome mail where a mail server would pick it up (a .eml file here)."""
    mail = EmailMessage()
    mail["To"], mail["From"], mail["Subject"] = address, "hello@example.com", subject
    mail.set_content(f"Welcome aboard, {address}!")
    folder = OUT / "mail"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{address}.eml").write_bytes(bytes(mail))
    return f"sent to {address}"


@app.task(queue="images", time_limit=60)
def make_thumbnail(path: str, size: int = 128) -> dict[str, object]:
    """Shrink an uploaded picture to at most ``size`` pixels a side, next to the original."""
    source = Path(path)
    target = source.with_name(f"{source.stem}.thumb.png")
    with Image.open(source) as image:
        image.thumbnail((size, size))
        image.save(target, "PNG")
        width, height = image.size
    return {"thumbnail": target.name, "width": width, "height": height}
