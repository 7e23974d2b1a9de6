"""OTLP/JSON through ``POST /v1/traces``: field names as in the .proto files (``resource_spans``,
``trace_id``, ``parent_span_id``) with hex ids, the OTLP/JSON edge values, and what is refused
with 400 (a field under both names, base64 ids)."""

from __future__ import annotations

import json
import time

import pytest
from google.rpc import status_pb2
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

from otel_sessions.exporter.otlp_json import parse_traces_json
from tests.field.helpers import post, session, spans_json

TRACE = "5b8efff798038103d269b633813fc60c"
ROOT = "00f067aa0ba902b7"  # 16 hex digits: 8 bytes (read as base64 it would be 12)
CHILD = "eee19b7ec3c1b174"


def _now_ns() -> int:
    return time.time_ns() - 5_000_000_000


def _snake_case_request(session_id: str) -> dict:
    """A root and its child, every field named as in the .proto files."""
    t0 = _now_ns()

    def span(span_id: str, name: str, parent: str | None, offset: int, attributes: list) -> dict:
        out = {"trace_id": TRACE, "span_id": span_id, "name": name, "kind": "SPAN_KIND_INTERNAL",
               "start_time_unix_nano": str(t0 + offset), "end_time_unix_nano": str(t0 + offset + 1_000_000),
               "attributes": [{"key": "session.id", "value": {"string_value": session_id}}, *attributes],
               "status": {"code": "STATUS_CODE_OK"}}
        if parent is not None:
            out["parent_span_id"] = parent
        return out

    return {"resource_spans": [{
        "resource": {"attributes": [{"key": "service.name", "value": {"string_value": "snake-svc"}}]},
        "scope_spans": [{
            "scope": {"name": "snake-scope"},
            "spans": [
                span(CHILD, "chat gpt-4o", ROOT, 1000, [
                    {"key": "gen_ai.request.model", "value": {"string_value": "gpt-4o"}},
                    {"key": "gen_ai.usage.input_tokens", "value": {"int_value": "100"}},
                    {"key": "gen_ai.usage.output_tokens", "value": {"int_value": 10}}]),
                span(ROOT, "answer question", None, 0, []),
            ],
        }],
    }]}


def _response(body: bytes) -> ExportTraceServiceResponse:
    """The service's OTLP/JSON answer, read as the OTLP/JSON it is."""
    return parse_traces_json(body, ExportTraceServiceResponse())


def test_proto_field_names_with_hex_ids_are_stored_under_those_ids(service, session_id):
    status, _headers, body = post(service, json.dumps(_snake_case_request(session_id)).encode())
    assert status == 200, body
    assert not _response(body).HasField("partial_success")

    stored = {span["spanId"]: span for span in spans_json(service, session_id)}
    assert set(stored) == {ROOT, CHILD}
    assert {span["traceId"] for span in stored.values()} == {TRACE}
    assert stored[CHILD]["parentSpanId"] == ROOT  # the 8-byte parent, not 12 bytes of base64
    assert "parentSpanId" not in stored[ROOT]
    detail = session(service, session_id)
    (trace,) = detail["traces"]
    assert trace["trace_id"] == TRACE and trace["root_name"] == "answer question"
    assert (detail["span_count"], detail["input_tokens"], detail["output_tokens"]) == (2, 100, 10)
    assert detail["services"] == ["snake-svc"]


@pytest.mark.parametrize("mix", ["span id", "parent span id", "resource spans", "start time", "any value"])
def test_a_field_under_both_names_is_refused_with_400(service, session_id, mix):
    request = _snake_case_request(session_id)
    scope_spans = request["resource_spans"][0]["scope_spans"][0]
    child = scope_spans["spans"][0]
    if mix == "span id":
        child["spanId"] = CHILD
    elif mix == "parent span id":
        child["parentSpanId"] = ROOT
    elif mix == "resource spans":
        request["resourceSpans"] = request["resource_spans"]
    elif mix == "start time":
        child["startTimeUnixNano"] = child["start_time_unix_nano"]
    else:
        child["attributes"][0]["value"]["stringValue"] = session_id
    status, _headers, body = post(service, json.dumps(request).encode())
    assert status == 400
    error = parse_traces_json(body, status_pb2.Status())  # in the request's content type
    assert error.code == 3 and "given twice" in error.message, error.message
    assert session(service, session_id) is None


def _edge_request(session_id: str, trace: str, span_id: str) -> dict:
    t0 = _now_ns()
    return {"resourceSpans": [{
        "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "edge-svc"}}],
                     "someFutureField": {"nested": [1, 2, 3]}},
        "scopeSpans": [{"scope": {"name": "edge"}, "spans": [{
            "traceId": trace, "spanId": span_id, "name": "edge span", "kind": "SPAN_KIND_SERVER",
            "startTimeUnixNano": t0, "endTimeUnixNano": t0 + 2_000_000,  # int64 as JSON numbers
            "attributes": [
                {"key": "session.id", "value": {"stringValue": session_id}},
                {"key": "empty.array", "value": {"arrayValue": {}}},
                {"key": "empty.values", "value": {"arrayValue": {"values": []}}},
                {"key": "kv", "value": {"kvlistValue": {"values": [
                    {"key": "inner", "value": {"intValue": 7}}, {"key": "nothing", "value": {}}]}}},
                {"key": "empty.any", "value": {}},
                {"key": "gen_ai.usage.input_tokens", "value": {"intValue": 12}},
                {"key": "bytes", "value": {"bytesValue": "AP8="}},
            ],
            "status": {"code": "STATUS_CODE_ERROR", "message": "bad"},
            "unknownSpanField": True,
        }], "unknownScopeSpansField": "x"}],
    }], "unknownTopLevel": 1}


def test_otlp_json_edge_values_are_read(service, session_id):
    status, _headers, body = post(service, json.dumps(_edge_request(session_id, TRACE.upper(), CHILD.upper()))
                                  .encode())
    assert status == 200, body
    (span,) = spans_json(service, session_id)
    assert (span["traceId"], span["spanId"]) == (TRACE, CHILD)  # upper-case hex read as the same ids
    assert span["kind"] == 2 and span["status"]["code"] == 2
    values = {kv["key"]: kv.get("value", {}) for kv in span["attributes"]}
    assert values["empty.array"] == {"arrayValue": {}} and values["empty.values"] == {"arrayValue": {}}
    assert values["kv"] == {"kvlistValue": {"values": [{"key": "inner", "value": {"intValue": "7"}},
                                                       {"key": "nothing", "value": {}}]}}
    assert values["empty.any"] == {} and values["bytes"] == {"bytesValue": "AP8="}
    detail = session(service, session_id)
    assert detail["input_tokens"] == 12 and detail["status"] == "failed"  # a root that ended in ERROR
    assert detail["traces"][0]["duration_ms"] == 2.0


@pytest.mark.parametrize("field, value", [
    ("traceId", "W47/95gDgQPSabYzgT/GDA=="),  # the trace id above in base64
    ("spanId", "7uGbfsPBsXQ="),
    ("parentSpanId", "APBnqguaArc="),
])
def test_base64_ids_are_refused_with_400(service, session_id, field, value):
    request = _edge_request(session_id, TRACE, CHILD)
    request["resourceSpans"][0]["scopeSpans"][0]["spans"][0][field] = value
    status, _headers, body = post(service, json.dumps(request).encode())
    assert status == 400
    error = parse_traces_json(body, status_pb2.Status())
    assert error.code == 3 and field in error.message and "hex" in error.message
    assert session(service, session_id) is None
