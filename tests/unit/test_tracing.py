"""OpenTelemetry: a send span in the producer, a run span in the worker linked to it, through
the real execution path (``run_queued``) and the OpenTelemetry SDK's in-memory exporter."""

from __future__ import annotations

from typing import Any

import pytest

pytest.importorskip("opentelemetry.sdk")

from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import (
    InMemorySpanExporter,
)
from opentelemetry.trace import SpanKind, StatusCode

from conveyor import Conveyor
from conveyor.middleware.tracing import Tracing
from conveyor.testing import run_queued


def traced_app(as_child: bool = False) -> tuple[Conveyor, InMemorySpanExporter, Any]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    app = Conveyor("traced", broker="memory://tracing-" + str(id(exporter)),
                   middleware=[Tracing(provider, as_child=as_child)])

    @app.task(name="add")
    def add(x: int, y: int) -> int:
        return x + y

    @app.task(name="boom")
    def boom() -> None:
        raise RuntimeError("boom")

    return app, exporter, provider.get_tracer("test")


def test_the_run_span_links_to_the_send_span_of_the_request() -> None:
    app, exporter, tracer = traced_app()
    with tracer.start_as_current_span("POST /signup") as request:
        result = app.send_task("add", (2, 3))
    assert run_queued(app)[0].get() == 5 and result.get() == 5
    spans = {s.name: s for s in exporter.get_finished_spans()}
    send, run = spans["send add"], spans["run add"]
    assert send.kind is SpanKind.PRODUCER and run.kind is SpanKind.CONSUMER
    assert send.parent is not None and send.parent.span_id == request.get_span_context().span_id
    assert [link.context.span_id for link in run.links] == [send.context.span_id]
    assert run.context.trace_id != send.context.trace_id  # a new trace, linked
    assert run.attributes is not None and run.attributes["messaging.message.id"] == result.id
    assert run.attributes["conveyor.attempt"] == 1


def test_as_child_puts_the_run_in_the_producers_trace_and_records_failures() -> None:
    app, exporter, _ = traced_app(as_child=True)
    app.send_task("boom")
    run_queued(app, raise_errors=False)
    spans = {s.name: s for s in exporter.get_finished_spans()}
    send, run = spans["send boom"], spans["run boom"]
    assert run.parent is not None and run.parent.span_id == send.context.span_id
    assert run.context.trace_id == send.context.trace_id
    assert run.status.status_code is StatusCode.ERROR
    assert [e.name for e in run.events] == ["exception"]


def test_without_an_sdk_the_spans_are_no_ops() -> None:
    app = Conveyor("plain", broker="memory://tracing-plain", middleware=[Tracing(
        trace.NoOpTracerProvider())])

    @app.task
    def one() -> int:
        return 1

    one.delay()
    assert run_queued(app)[0].get() == 1
