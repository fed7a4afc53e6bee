"""Flask: ``Conveyor(app)`` or ``init_app``, settings from ``app.config``, tasks run inside
the application context.

```python
from flask import Flask
from conveyor.contrib.flask import Conveyor

conveyor = Conveyor()                 # in extensions.py

@conveyor.task(queue="images")
def make_thumbnail(path: str) -> str:
    current_app.logger.info("...")         # the app context is pushed around every run
    ...

def create_app() -> Flask:
    web = Flask(__name__)
    web.config["CONVEYOR_BROKER_URL"] = "redis://localhost:6379/0"
    conveyor.init_app(web)                 # or Conveyor(web)
    return web
```

Every ``CONVEYOR_*`` key of ``app.config`` is a Conveyor setting (``CONVEYOR_BROKER_URL``,
``CONVEYOR_RESULT_TTL``, ...), read by ``init_app``. The worker runs ``conveyor worker -A
yourapp.wsgi:conveyor`` (or any module where ``create_app()`` was called): each run of a task
is inside ``app.app_context()``, so ``current_app``, Flask-SQLAlchemy sessions and the like
work as in a request. ``conveyor.app`` is the :class:`~conveyor.Conveyor` application.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any

from flask import Flask, jsonify

from ..app import Conveyor as ConveyorApp
from ..middleware.base import Call, Job, Middleware
from ..worker.runner import in_call
from .status import task_status

if TYPE_CHECKING:
    from flask.typing import ResponseReturnValue

EXTENSION = "conveyor"


class AppContext(Middleware):
    """Runs each task inside the Flask application's context (``app.app_context()``)."""

    def __init__(self) -> None:
        self.flask_app: Flask | None = None

    async def around_run(self, job: Job, call: Call) -> Any:
        if self.flask_app is None:
            return await call()
        factory: Callable[[], AbstractContextManager[Any]] = self.flask_app.app_context
        with in_call(factory):
            return await call()


class FlaskConveyor(ConveyorApp):
    """A :class:`conveyor.Conveyor` app that is also a Flask extension: configured from
    ``app.config`` by :meth:`init_app`, running its tasks in the Flask app's context. A worker
    loads it like any app: ``conveyor worker -A wsgi:conveyor``."""

    def __init__(self, app: Flask | None = None, name: str | None = None,
                 **options: Any) -> None:
        self._context = AppContext()
        middleware = [self._context, *options.pop("middleware", ())]
        super().__init__(name or (app.import_name if app is not None else "flask"),
                         middleware=middleware, **options)
        if app is not None:
            self.init_app(app)

    def init_app(self, app: Flask) -> None:
        """Read ``CONVEYOR_*`` settings from ``app.config`` and bind tasks to ``app``'s
        context; registers the extension as ``app.extensions["conveyor"]``."""
        self.config_from_object(dict(app.config), namespace="CONVEYOR")
        self._context.flask_app = app
        app.extensions[EXTENSION] = self

    @property
    def flask_app(self) -> Flask | None:
        """The Flask app given to :meth:`init_app`, if any yet."""
        return self._context.flask_app

    def status_view(self, *, traceback: bool = False) -> Callable[[str], ResponseReturnValue]:
        """A view answering a task's state, result or error as JSON:
        ``web.add_url_rule("/tasks/<task_id>", view_func=conveyor.status_view())``."""

        def view(task_id: str) -> ResponseReturnValue:
            return jsonify(task_status(self, task_id, traceback=traceback))

        view.__name__ = "conveyor_task_status"
        return view


#: The extension under the name Flask users expect: ``Conveyor(app)``.
Conveyor = FlaskConveyor
