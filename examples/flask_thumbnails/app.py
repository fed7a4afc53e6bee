"""Flask thumbnails: upload a picture, a worker makes its thumbnail with Pillow, a status page
follows the task.

    conveyor worker -A examples.flask_thumbnails.app:conveyor -Q images
    flask --app examples.flask_thumbnails.app run
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

from flask import (
    Flask,
    abort,
    current_app,
    redirect,
    render_template_string,
    request,
    send_from_directory,
    url_for,
)
from PIL import Image
from werkzeug.wrappers import Response

from conveyor.contrib.flask import Conveyor

conveyor = Conveyor()


@conveyor.task(queue="images", time_limit=60)
def make_thumbnail(name: str, size: int = 200) -> dict[str, object]:
    """Shrink upload ``name`` to at most ``size`` pixels a side (runs in the app context, so
    it reads the folder from ``current_app.config``)."""
    folder = Path(current_app.config["UPLOAD_FOLDER"])
    with Image.open(folder / name) as image:
        image.thumbnail((size, size))
        thumb = f"{Path(name).stem}.thumb.png"
        image.save(folder / thumb, "PNG")
        return {"thumbnail": thumb, "width": image.size[0], "height": image.size[1]}


def create_app() -> Flask:
    web = Flask(__name__)
    web.config.from_mapping(
        UPLOAD_FOLDER=os.environ.get("THUMBNAILS_DIR", os.path.abspath("thumbnails-out")),
        MAX_CONTENT_LENGTH=16 * 1024 * 1024,
        # CONVEYOR_* settings; the environment's CONVEYOR_BROKER_URL when set
        CONVEYOR_BROKER_URL=os.environ.get("CONVEYOR_BROKER_URL", "sqlite:///conveyor.db"),
        CONVEYOR_RESULT_TTL=86400,
    )
    Path(web.config["UPLOAD_FOLDER"]).mkdir(parents=True, exist_ok=True)
    conveyor.init_app(web)
    web.add_url_rule("/tasks/<task_id>", view_func=conveyor.status_view())
    web.add_url_rule("/", view_func=index)
    web.add_url_rule("/upload", view_func=upload, methods=["POST"])
    web.add_url_rule("/status/<task_id>", view_func=status)
    web.add_url_rule("/files/<name>", view_func=files)
    return web


def index() -> str:
    return render_template_string(PAGE, body="""
<form method="post" action="/upload" enctype="multipart/form-data">
  <input type="file" name="picture" accept="image/*" required> <button>Upload</button>
</form>""")


def upload() -> Response:
    picture = request.files.get("picture")
    if picture is None or not picture.filename:
        abort(400, "no picture")
    name = f"{uuid.uuid4().hex}{Path(picture.filename).suffix.lower()[:8]}"
    picture.save(Path(current_app.config["UPLOAD_FOLDER"]) / name)
    result = make_thumbnail.delay(name)
    return redirect(url_for("status", task_id=result.id), code=303)


def status(task_id: str) -> str:
    found = conveyor.AsyncResult(task_id)
    state = str(found.state)  # read once: the task may end between two reads
    outcome = found.result if state == "SUCCESS" else None
    return render_template_string(PAGE, task_id=task_id, state=state, outcome=outcome,
                                  error=state == "FAILURE", body=STATUS)


def files(name: str) -> Response:
    return send_from_directory(current_app.config["UPLOAD_FOLDER"], name)


PAGE = """<!doctype html><html><head><meta charset="utf-8"><title>Thumbnails</title>
{% if state and state not in ("SUCCESS", "FAILURE", "REVOKED", "EXPIRED") %}
<meta http-equiv="refresh" content="1">{% endif %}</head>
<body><h1>Thumbnails</h1>{{ body | safe }}
{% if task_id %}<p>Task <code>{{ task_id }}</code>: <strong id="state">{{ state }}</strong></p>
{% if outcome %}<img id="thumbnail" src="/files/{{ outcome.thumbnail }}"
 width="{{ outcome.width }}" height="{{ outcome.height }}">{% endif %}
{% if error %}<p id="error">That file is not a picture we can read.</p>{% endif %}
{% endif %}</body></html>"""
STATUS = "<p><a href='/'>Upload another</a></p>"

app = create_app()  # for `flask --app examples.flask_thumbnails.app run` and the worker
