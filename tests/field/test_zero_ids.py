"""All-zero ids are invalid ids (W3C Trace Context): a span whose parent span id is 8 zero
bytes is a root everywhere (trace root name, session status, the Jaeger view), and a span
whose trace id is 16 zero bytes is refused like one without a trace id (partial success)."""

from __future__ import annotations

import json
import time

import grpc
import pytest
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanContext, SpanKind, Status, StatusCode, TraceFlags

from otel_sessions.exporter.otlp_json import message_to_json
from tests.field.helpers import get, post, send, session

TRACE_ID = 0x4BF92F3577B34DA6A3CE929D0E0E4736
ROOT_ID = 0x00F067AA0BA902B7
CHILD_ID = 0x53995C3F42CD8AD8
ZERO_SPAN_HEX = "0" * 16
EXPORT = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"


def _span(name: str, span_id: int, parent_id: int | None, session_id: str, error: bool = False,
          trace_id: int = TRACE_ID, offset_ms: int = 0) -> ReadableSpan:
    """A finished SDK span; ``parent_id`` 0 makes the stock encoder write 8 zero bytes."""
    t0 = time.time_ns() - 10_000_000_000 + offset_ms * 1_000_000
    parent = None if parent_id is None else SpanContext(trace_id, parent_id, is_remote=True)
    return ReadableSpan(
        name, SpanContext(trace_id, span_id, is_remote=False, trace_flags=TraceFlags(1)), parent=parent,
        resource=Resource.create({"service.name": "zero-parent-app"}), attributes={"session.id": session_id},
        kind=SpanKind.SERVER if parent_id == 0 else SpanKind.INTERNAL,
        status=Status(StatusCode.ERROR, "failed") if error else Status(StatusCode.UNSET),
        start_time=t0, end_time=t0 + 5_000_000)


def _trace(session_id: str, trace_id: int = TRACE_ID) -> list[ReadableSpan]:
    return [_span("lookup", CHILD_ID, ROOT_ID, session_id, trace_id=trace_id, offset_ms=1),
            _span("handle request", ROOT_ID, 0, session_id, error=True, trace_id=trace_id)]


def _check_root(service, session_id: str, trace_hex: str) -> None:
    detail = session(service, session_id)
    (trace,) = detail["traces"]
    assert trace["trace_id"] == trace_hex and trace["root_name"] == "handle request"
    assert detail["status"] == "failed"  # the root ended in ERROR

    status, body = get(service, f"/api/traces/{trace_hex}")
    assert status == 200, body
    (found,) = body["data"]
    spans = {span["operationName"]: span for span in found["spans"]}
    assert spans["handle request"]["references"] == []
    assert spans["lookup"]["references"] == [
        {"refType": "CHILD_OF", "traceID": trace_hex, "spanID": f"{ROOT_ID:016x}"}]
    assert ZERO_SPAN_HEX not in json.dumps(body)

    status, body = get(service, f"/api/sessions/{session_id}/trace")
    assert status == 200, body
    (synthetic,) = body["data"]
    assert ZERO_SPAN_HEX not in json.dumps(body)
    spans = {span["operationName"]: span for span in synthetic["spans"]}
    session_root = synthetic["spans"][0]["spanID"]
    assert spans["handle request"]["references"] == [
        {"refType": "CHILD_OF", "traceID": synthetic["traceID"], "spanID": session_root}]


@pytest.mark.parametrize("transport", ["grpc", "http"])
def test_all_zero_parent_span_id_is_a_root(service, session_id, transport):
    send(service, _trace(session_id), transport)
    _check_root(service, session_id, f"{TRACE_ID:032x}")


def test_all_zero_parent_span_id_in_otlp_json_is_a_root(service, session_id):
    body = message_to_json(encode_spans(_trace(session_id)))
    assert f'"parentSpanId":"{ZERO_SPAN_HEX}"' in body.decode()
    status, _headers, reply = post(service, body)
    assert status == 200, reply
    _check_root(service, session_id, f"{TRACE_ID:032x}")


def test_the_root_alone_in_a_later_request(service, session_id):
    child, root = _trace(session_id)
    send(service, [child])
    assert session(service, session_id)["traces"][0]["root_name"] == ""
    send(service, [root])
    _check_root(service, session_id, f"{TRACE_ID:032x}")


def test_all_zero_trace_id_is_refused_like_an_empty_one(service, session_id):
    request = encode_spans([_span("kept", ROOT_ID, None, session_id),
                            _span("zero trace", CHILD_ID, None, session_id, trace_id=0),
                            _span("no trace", CHILD_ID + 1, None, session_id)])
    spans = request.resource_spans[0].scope_spans[0].spans
    assert spans[1].trace_id == bytes(16)
    spans[2].trace_id = b""
    body = request.SerializeToString()

    with grpc.insecure_channel(service.grpc_endpoint) as channel:
        answer = ExportTraceServiceResponse.FromString(channel.unary_unary(EXPORT)(body, timeout=10))
    assert answer.partial_success.rejected_spans == 2
    message = answer.partial_success.error_message
    assert "'zero trace'" in message and "'no trace'" in message

    status, _headers, reply = post(service, body, "application/x-protobuf")
    assert status == 200
    assert ExportTraceServiceResponse.FromString(reply).partial_success == answer.partial_success
    detail = session(service, session_id)
    assert detail["span_count"] == 1 and detail["traces"][0]["root_name"] == "kept"
