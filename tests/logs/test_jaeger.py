"""A span's log records in the Jaeger-compatible API: each stored record of a session that
names a span of the trace served is one more entry of that span's ``logs`` (field ``event``
plus ``message``, ``level`` and the record's attributes), in time order with the span's
events, in a session's trace, its synthetic session trace and a search by session.id; the
records of a trace that never named a session come with its parked spans."""

from __future__ import annotations

import json
import urllib.parse
import urllib.request

import pytest
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

from otel_sessions.processor import SessionSpanProcessor, session
from tests.logs.helpers import (
    grpc_export,
    grpc_log_exporter,
    log_provider,
    random_id,
    record,
    request,
    stdlib_logger,
)

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def _api(service, path: str) -> dict:
    with urllib.request.urlopen(service.http_url + path, timeout=10) as response:
        return json.loads(response.read())


def _fields(entry: dict) -> dict:
    return {f["key"]: f["value"] for f in entry["fields"]}


def test_span_logs_carry_the_records_of_each_span(service):
    provider = TracerProvider()
    provider.add_span_processor(SessionSpanProcessor())
    provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=service.grpc_endpoint, insecure=True)))
    tracer = provider.get_tracer("t")
    logs = log_provider(grpc_log_exporter(service))
    logger = stdlib_logger(logs, "jaeger")
    with session("sess-jaeger"):
        with tracer.start_as_current_span("handle") as root:
            logger.info("request in")
            with tracer.start_as_current_span("tool call") as child:
                child.add_event("cache lookup")
                logger.error("tool failed", extra={"tool.name": "search"})
    logs.shutdown()
    provider.shutdown()
    trace_hex = format(root.get_span_context().trace_id, "032x")
    root_hex, child_hex = (format(s.get_span_context().span_id, "016x") for s in (root, child))

    def check(trace: dict) -> None:
        by_span = {s["spanID"]: s for s in trace["spans"]}
        entries = [_fields(e) for e in by_span[root_hex]["logs"]]
        assert entries == [{"event": "log", "message": "request in", "level": "INFO",
                            **{k: v for k, v in entries[0].items() if k not in ("event", "message", "level")}}]
        assert entries[0]["session.id"] == "sess-jaeger" and "code.function.name" in entries[0]
        child_logs = by_span[child_hex]["logs"]
        assert [_fields(e)["event"] for e in child_logs] == ["cache lookup", "log"]  # time order
        assert child_logs[0]["timestamp"] <= child_logs[1]["timestamp"]
        failed = _fields(child_logs[1])
        assert (failed["message"], failed["level"], failed["tool.name"]) == ("tool failed", "ERROR", "search")

    check(_api(service, f"/api/traces/{trace_hex}")["data"][0])
    check(_api(service, "/api/sessions/sess-jaeger/trace")["data"][0])
    tags = urllib.parse.quote(json.dumps({"session.id": "sess-jaeger"}))
    found = _api(service, f"/api/traces?service=unknown_service%3Apython&tags={tags}")["data"]
    assert len(found) == 2  # the synthetic session trace, then the trace itself
    for trace in found:
        check(trace)


def test_records_of_a_trace_without_a_session_come_with_its_spans(service):
    from tests.support import send, tracer

    t, memory = tracer("lonely")
    with t.start_as_current_span("no session here") as span:
        pass
    send(service.grpc_endpoint, memory.get_finished_spans())
    context = span.get_span_context()
    trace_id, span_id = context.trace_id.to_bytes(16, "big"), context.span_id.to_bytes(8, "big")
    grpc_export(service, request([record("waiting", trace_id=trace_id, span_id=span_id, severity=13,
                                         severity_text="")]).SerializeToString())
    grpc_export(service, request([record("other span", trace_id=trace_id, span_id=random_id(8))]).SerializeToString())
    trace = _api(service, f"/api/traces/{trace_id.hex()}")["data"][0]
    assert [(_fields(e)["message"], _fields(e)["level"]) for e in trace["spans"][0]["logs"]] == [("waiting", "WARN")]
