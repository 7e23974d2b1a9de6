"""Shapes from public reports against session stores, which the service already handles (kept
so): session ids on one span of a trace only, Vercel AI SDK and Traceloop names, Jaeger tag
search on typed tags, and ``partial_success`` answered in the request's encoding."""

from __future__ import annotations

import json
import time
import urllib.parse

import pytest
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse
from opentelemetry.trace import Status, StatusCode

from otel_sessions.exporter.otlp_json import message_to_json, parse_traces_json
from tests.field.helpers import get, post, send, session, tracer


def test_session_id_only_on_a_child_whose_root_arrives_later(service, session_id):
    t, memory = tracer()
    with t.start_as_current_span("handle turn"):
        with t.start_as_current_span("chat gpt-4o", attributes={
                "session.id": session_id, "gen_ai.request.model": "gpt-4o",
                "gen_ai.usage.input_tokens": 40, "gen_ai.usage.output_tokens": 4}):
            pass
    child, root = memory.get_finished_spans()
    send(service, [child], "http")
    send(service, [root], "http")
    detail = session(service, session_id)
    assert (detail["span_count"], detail["trace_count"], detail["input_tokens"], detail["output_tokens"]) == (
        2, 1, 40, 4)
    assert detail["traces"][0]["root_name"] == "handle turn"


def test_session_id_only_on_the_root_with_usage_bearing_children_first(service, session_id):
    t, memory = tracer()
    with t.start_as_current_span("handle turn", attributes={"session.id": session_id, "user.id": "u-7"}):
        for i in range(2):
            with t.start_as_current_span(f"chat {i}", attributes={
                    "gen_ai.request.model": "gpt-4o", "gen_ai.usage.input_tokens": 100,
                    "gen_ai.usage.output_tokens": 10}):
                pass
    *children, root = memory.get_finished_spans()
    send(service, children)
    assert session(service, session_id) is None  # kept by trace until the trace names its session
    send(service, [root])
    detail = session(service, session_id)
    assert (detail["span_count"], detail["input_tokens"], detail["output_tokens"]) == (3, 200, 20)
    assert detail["user_id"] == "u-7" and detail["traces"][0]["root_name"] == "handle turn"
    assert detail["cost_usd"] == pytest.approx(2 * (100 * 2.50 + 10 * 10.00) / 1e6, rel=1e-9)


def test_vercel_ai_sdk_telemetry_metadata(service, session_id):
    t, memory = tracer("next-app")
    metadata = {"ai.telemetry.metadata.sessionId": session_id, "ai.telemetry.metadata.userId": "vercel-user"}
    with t.start_as_current_span("ai.generateText", attributes={
            **metadata, "ai.operationId": "ai.generateText", "ai.model.id": "gpt-4o-mini",
            "ai.usage.promptTokens": 10, "ai.usage.completionTokens": 3}):
        with t.start_as_current_span("ai.generateText.doGenerate", attributes={
                **metadata, "ai.operationId": "ai.generateText.doGenerate", "gen_ai.system": "openai.chat",
                "gen_ai.request.model": "gpt-4o-mini", "gen_ai.usage.input_tokens": 10,
                "gen_ai.usage.output_tokens": 3}):
            pass
    send(service, memory.get_finished_spans(), "http")
    detail = session(service, session_id)
    assert detail["user_id"] == "vercel-user" and detail["span_count"] == 2
    assert (detail["input_tokens"], detail["output_tokens"]) == (10, 3)
    assert detail["models"] == ["gpt-4o-mini"] and detail["services"] == ["next-app"]


@pytest.mark.parametrize("children_first", [False, True], ids=["one request", "children first"])
def test_traceloop_association_properties_only_on_the_workflow_span(service, session_id, children_first):
    t, memory = tracer()
    with t.start_as_current_span("support.workflow", attributes={
            "traceloop.span.kind": "workflow", "traceloop.workflow.name": "support",
            "traceloop.association.properties.session_id": session_id,
            "traceloop.association.properties.user_id": "tl-user"}):
        with t.start_as_current_span("openai.chat", attributes={
                "llm.request.type": "chat", "gen_ai.system": "openai", "gen_ai.request.model": "gpt-4o",
                "gen_ai.usage.prompt_tokens": 20, "gen_ai.usage.completion_tokens": 2}):
            pass
    chat, workflow = memory.get_finished_spans()
    if children_first:
        send(service, [chat])
        send(service, [workflow])
    else:
        send(service, [chat, workflow])
    detail = session(service, session_id)
    assert detail["user_id"] == "tl-user" and detail["span_count"] == 2
    assert (detail["input_tokens"], detail["output_tokens"]) == (20, 2)
    assert detail["traces"][0]["root_name"] == "support.workflow"


def _search(running, **params) -> list[dict]:
    query = urllib.parse.urlencode({key: json.dumps(value) if key == "tags" else value
                                    for key, value in params.items()})
    status, body = get(running, "/api/traces?" + query)
    assert status == 200, body
    return body["data"]


def test_jaeger_tag_search_on_int_bool_and_error_tags(service, session_id):
    t, memory = tracer("tagged-svc")
    with t.start_as_current_span("request", attributes={"session.id": session_id}):
        with t.start_as_current_span("call backend", attributes={
                "http.response.status_code": 503, "cache.hit": True, "retry.delay": 0.5}) as span:
            span.set_status(Status(StatusCode.ERROR, "backend down"))
    send(service, memory.get_finished_spans())
    trace_hex = f"{span.get_span_context().trace_id:032x}"
    now_us = time.time_ns() // 1000
    common = {"service": "tagged-svc", "start": now_us - 3_600_000_000, "end": now_us + 60_000_000,
              "lookback": "custom", "limit": 20}

    def found(**params) -> list[str]:
        deadline = time.monotonic() + 10
        while True:  # the service list is written after the spans
            traces = [trace["traceID"] for trace in _search(service, **common, **params)]
            if traces or time.monotonic() > deadline:
                return traces
            time.sleep(0.05)

    assert found(tags={"http.response.status_code": "503"}) == [trace_hex]
    assert found(tags={"cache.hit": "true"}) == [trace_hex]
    assert found(tags={"error": "true"}) == [trace_hex]
    assert found(tags={"retry.delay": "0.5"}) == [trace_hex]
    assert found(tag="http.response.status_code:503") == [trace_hex]
    assert found(tags={"http.response.status_code": "503", "cache.hit": "true", "error": "true"}) == [trace_hex]
    for miss in ({"http.response.status_code": "200"}, {"cache.hit": "false"}, {"error": "false"}):
        assert _search(service, **common, tags=miss) == [], miss


def _with_bad_span(session_id: str):
    t, memory = tracer()
    with t.start_as_current_span("good", attributes={"session.id": session_id}):
        pass
    with t.start_as_current_span("no span id", attributes={"session.id": session_id}):
        pass
    request = encode_spans(memory.get_finished_spans())
    request.resource_spans[0].scope_spans[0].spans[1].span_id = b""
    return request


def test_partial_success_is_answered_in_protobuf_to_a_protobuf_request(service, session_id):
    status, headers, body = post(service, _with_bad_span(session_id).SerializeToString(), "application/x-protobuf")
    assert status == 200 and headers["Content-Type"].startswith("application/x-protobuf")
    answer = ExportTraceServiceResponse.FromString(body)
    assert answer.partial_success.rejected_spans == 1
    assert "'no span id'" in answer.partial_success.error_message
    assert session(service, session_id)["span_count"] == 1


def test_partial_success_is_answered_in_json_to_a_json_request(service, session_id):
    status, headers, body = post(service, message_to_json(_with_bad_span(session_id)))
    assert status == 200 and headers["Content-Type"].startswith("application/json")
    assert json.loads(body)["partialSuccess"]["rejectedSpans"] == "1"
    answer = parse_traces_json(body, ExportTraceServiceResponse())
    assert answer.partial_success.rejected_spans == 1
