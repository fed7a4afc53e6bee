"""FastAPI sign-up: POST /signup answers 202 with the ids of the tasks it queued; GET
/tasks/{id} follows them; GET /status/{id} is a page that polls it.

    conveyor worker -A examples.fastapi_signup.tasks -Q emails,images
    uvicorn examples.fastapi_signup.app:web
"""

from __future__ import annotations

import re
import uuid
from html import escape
from typing import Annotated

from fastapi import FastAPI, File, Form, HTTPException, UploadFile
from fastapi.responses import HTMLResponse

from conveyor.contrib.fastapi import ConveyorApp, lifespan, status_router

from .tasks import OUT, app, make_thumbnail, send_email

web = FastAPI(title="Sign-up", lifespan=lifespan(app))
web.include_router(status_router(app))  # GET /tasks/{task_id}: state, result or error
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[a-z]{2,}$", re.IGNORECASE)


@web.post("/signup", status_code=202)
async def signup(email: Annotated[str, Form()], avatar: Annotated[UploadFile, File()],
                 conveyor: ConveyorApp) -> dict[str, str]:
    """Queue the welcome mail and the avatar's thumbnail; answer at once with their ids."""
    if not EMAIL.match(email):
        raise HTTPException(422, "not an e-mail address")
    uploads = OUT / "uploads"
    uploads.mkdir(parents=True, exist_ok=True)
    saved = uploads / f"{uuid.uuid4().hex}.upload"
    saved.write_bytes(await avatar.read())
    mail = await send_email.adelay(email, "Welcome!")
    thumb = await make_thumbnail.adelay(str(saved.resolve()))
    return {"email_task": mail.id, "thumbnail_task": thumb.id, "app": conveyor.name}


@web.get("/", response_class=HTMLResponse)
async def form() -> str:
    return PAGE.format(body="""
<form method="post" action="/signup" enctype="multipart/form-data" id="signup">
  <label>E-mail <input name="email" type="email" required></label>
  <label>Avatar <input name="avatar" type="file" accept="image/*" required></label>
  <button>Sign up</button>
</form>
<ul id="tasks"></ul>
<script>
document.getElementById("signup").addEventListener("submit", async (event) => {
  event.preventDefault();
  const answer = await fetch("/signup", {method: "POST", body: new FormData(event.target)});
  const ids = await answer.json();
  for (const key of ["email_task", "thumbnail_task"]) {
    const item = document.createElement("li");
    item.innerHTML = `<a href="/status/${ids[key]}">${key}</a>`;
    document.getElementById("tasks").append(item);
  }
});
</script>""")


@web.get("/status/{task_id}", response_class=HTMLResponse)
async def status_page(task_id: str) -> str:
    """A page that polls GET /tasks/{id} every half second until the task is final."""
    return PAGE.format(body=f"""
<p>Task <code>{escape(task_id)}</code>: <strong id="state">…</strong></p>
<pre id="result"></pre>
<script>
async function poll() {{
  const found = await (await fetch("/tasks/{escape(task_id)}")).json();
  document.getElementById("state").textContent = found.state;
  if (found.ready) {{
    document.getElementById("result").textContent =
      JSON.stringify(found.error || found.result, null, 2);
  }} else {{
    setTimeout(poll, 500);
  }}
}}
poll();
</script>""")


PAGE = """<!doctype html><html><head><meta charset="utf-8"><title>Sign-up</title></head>
<body><h1>Sign-up</h1>{body}</body></html>"""
