"""OpenTelemetry tracing on the seam (off by default; ``pip install conveyor-tasks[otel]``).

``app = Conveyor(..., middleware=[Tracing()])`` makes every send a ``send <task>`` span
(kind PRODUCER, a child of whatever span is current in the producer) whose context travels in
the message's options as a W3C ``traceparent``; the worker runs each task inside a
``run <task>`` span (kind CONSUMER) linked to it, so a trace viewer leads from the request
that queued a task to its run, also when the run comes hours later or is retried. With
``as_child=True`` the run span is the send span's child instead of a new trace.

Only the OpenTelemetry API is needed here; the application configures the SDK and its
exporter as usual (without one the spans are no-ops).
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.trace import Link, SpanKind, Status, StatusCode

from .base import Call, Job, Middleware

if TYPE_CHECKING:
    from ..app import Conveyor
    from ..message import Message

#: The message option holding the propagated context (a small dict of strings).
OPTION = "trace"


class Tracing(Middleware):
    """Producer and worker spans, linked through the message (see the module docstring)."""

    def __init__(self, tracer_provider: trace.TracerProvider | None = None, *,
                 as_child: bool = False) -> None:
        self.tracer = trace.get_tracer("conveyor", tracer_provider=tracer_provider)
        self.as_child = as_child

    def before_publish(self, app: Conveyor, message: Message) -> Message:
        with self.tracer.start_as_current_span(
                f"send {message.task}", kind=SpanKind.PRODUCER,
                attributes=_attributes(message.task, message.id, message.queue)):
            carrier: dict[str, str] = {}
            propagate.inject(carrier)
        return dataclasses.replace(message, options={**message.options, OPTION: carrier})

    async def around_run(self, job: Job, call: Call) -> Any:
        message = job.message
        carrier = message.options.get(OPTION) if message is not None else None
        sent = propagate.extract(carrier) if isinstance(carrier, dict) else None
        producer = trace.get_current_span(sent).get_span_context() if sent else None
        links = [Link(producer)] if producer is not None and producer.is_valid else []
        parent = sent if self.as_child and sent is not None else otel_context.Context()
        attributes = _attributes(job.name, job.id, message.queue if message else "")
        attributes["conveyor.attempt"] = job.delivery.attempt
        with self.tracer.start_as_current_span(
                f"run {job.name}", context=parent, kind=SpanKind.CONSUMER, links=links,
                attributes=attributes, record_exception=False,
                set_status_on_exception=False) as span:
            try:
                return await call()
            except BaseException as exc:
                span.record_exception(exc)
                span.set_status(Status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}"))
                raise


def _attributes(task: str, task_id: str, queue: str) -> dict[str, Any]:
    return {"messaging.system": "conveyor", "messaging.destination.name": queue,
            "messaging.message.id": task_id, "conveyor.task": task}
