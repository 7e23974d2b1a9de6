"""Service B of the cross-process test: a WSGI server (OTel WSGI instrumentation) with
SessionSpanProcessor(baggage=True). Prints ``PORT <n>``; ``GET /spans`` returns its spans."""

from __future__ import annotations

import json
import sys
from wsgiref.simple_server import WSGIRequestHandler, make_server

from opentelemetry import trace
from opentelemetry.instrumentation.wsgi import OpenTelemetryMiddleware
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from otel_sessions.processor import SessionSpanProcessor, current_session

exporter = InMemorySpanExporter()
provider = TracerProvider()
provider.add_span_processor(SessionSpanProcessor(baggage=True))
provider.add_span_processor(SimpleSpanProcessor(exporter))
trace.set_tracer_provider(provider)
tracer = trace.get_tracer("service-b")


def work(environ, start_response):
    with tracer.start_as_current_span("b-work"):
        active = current_session()
        body = json.dumps({"session_id": active.session_id if active else None}).encode()
    start_response("200 OK", [("Content-Type", "application/json")])
    return [body]


def app(environ, start_response):
    if environ["PATH_INFO"] == "/spans":
        spans = [
            {"name": s.name, "trace_id": f"{s.context.trace_id:032x}", "attributes": dict(s.attributes)}
            for s in exporter.get_finished_spans()
        ]
        start_response("200 OK", [("Content-Type", "application/json")])
        return [json.dumps(spans).encode()]
    return instrumented(environ, start_response)


instrumented = OpenTelemetryMiddleware(work, tracer_provider=provider)


class QuietHandler(WSGIRequestHandler):
    def log_message(self, format, *args):  # noqa: A002
        pass


if __name__ == "__main__":
    server = make_server("127.0.0.1", 0, app, handler_class=QuietHandler)
    print(f"PORT {server.server_port}", flush=True)
    server.serve_forever()
    sys.exit(0)
