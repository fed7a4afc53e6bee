"""Tasks for the web-framework tests (importable by name, so failures rebuild as their type)."""

from __future__ import annotations

from conveyor import Conveyor


class Refused(Exception):
    pass


def register(app: Conveyor) -> None:
    @app.task(name="web.add")
    def add(x: int, y: int) -> int:
        return x + y

    @app.task(name="web.refuse", retries=0)
    def refuse(why: str) -> None:
        raise Refused(why)

    @app.task(name="web.blob")
    def blob() -> dict[str, object]:
        return {"bytes": "fine", "nested": [1, 2.5, None]}
