"""The synthetic session trace: one trace per session, id and root from ``sha256(session id)``,
every span of the session re-parented under the root where its parent is not there."""

from __future__ import annotations

import hashlib
from dataclasses import replace

from opentelemetry.proto.common.v1.common_pb2 import InstrumentationScope
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import Span, TracesData

from otel_sessions.exporter.jaeger.translate import (
    ORIGINAL_TRACE_TAG,
    SESSION_SERVICE,
    session_root_span_id,
    session_trace,
    session_trace_id,
)
from otel_sessions.exporter.store.summary import SessionSummary
from tests.jaeger.builders import CHECKOUT, LINKED_TRACE, TRACE_A, TRACE_B, kv, sid, span, tags

SESSION = "sess-42"
DIGEST = hashlib.sha256(SESSION.encode()).digest()
TRACE_HEX = DIGEST[:16].hex()
ROOT_HEX = DIGEST[16:24].hex()


def summary(**changes) -> SessionSummary:
    base = SessionSummary(
        id=SESSION, name="Checkout chat", user_id="u-1", thread_id="t-1", previous_id=None, status="active",
        start_us=5_000_000, end_us=60_000_000, last_seen_ms=60_000, trace_count=2, span_count=4,
        error_count=1, input_tokens=120, output_tokens=45, cost_usd=0.012345678912345, cost_estimated=False,
        models=["gpt-4o", "gpt-4o-mini"], services=["checkout"])
    return replace(base, **changes)


def session_data() -> TracesData:
    data = TracesData()
    ss = data.resource_spans.add(resource=CHECKOUT).scope_spans.add(scope=InstrumentationScope(name="agent"))
    ss.spans.extend([
        span(TRACE_A, 1, "turn 1", 10, 20),  # a trace root
        span(TRACE_A, 2, "llm", 11, 19, parent=1),  # its parent is here: kept
        span(TRACE_A, 3, "tool", 12, 13, parent=99),  # its parent was never stored: re-parented
        span(TRACE_B, 4, "turn 2", 30, 45, attributes=[kv("user.id", "someone-else")],
             links=[Span.Link(trace_id=LINKED_TRACE, span_id=(7).to_bytes(8, "big"))]),
        # same span id as in TRACE_A, parent id 1 of another trace: not a parent here
        span(TRACE_B, 5, "late", 40, 41, parent=1),
    ])
    return data


def by_name(trace: dict) -> dict[str, dict]:
    return {s["operationName"]: s for s in trace["spans"]}


def test_ids_from_sha256_of_the_session_id():
    assert session_trace_id(SESSION) == DIGEST[:16]
    assert session_root_span_id(SESSION) == DIGEST[16:24]
    assert len(session_trace_id("x")) == 16 and len(session_root_span_id("x")) == 8
    assert session_trace_id("sess-43") != session_trace_id(SESSION)
    trace = session_trace(summary(), session_data())
    assert trace["traceID"] == TRACE_HEX
    root = trace["spans"][0]
    assert root["spanID"] == ROOT_HEX and root["traceID"] == TRACE_HEX
    assert all(s["traceID"] == TRACE_HEX for s in trace["spans"])


def test_root_span_names_the_session_and_carries_its_figures():
    trace = session_trace(summary(), session_data())
    root = trace["spans"][0]
    assert root["operationName"] == "Checkout chat"
    assert root["references"] == [] and root["logs"] == [] and root["warnings"] is None
    # covers every span: first start 10 s, last end 45 s
    assert root["startTime"] == 10_000_000 and root["duration"] == 35_000_000
    assert root["tags"] == [
        {"key": "session.id", "type": "string", "value": SESSION},
        {"key": "session.name", "type": "string", "value": "Checkout chat"},
        {"key": "user.id", "type": "string", "value": "u-1"},
        {"key": "gen_ai.conversation.id", "type": "string", "value": "t-1"},
        {"key": "session.status", "type": "string", "value": "active"},
        {"key": "session.trace_count", "type": "int64", "value": 2},
        {"key": "session.span_count", "type": "int64", "value": 4},
        {"key": "session.error_count", "type": "int64", "value": 1},
        {"key": "gen_ai.usage.input_tokens", "type": "int64", "value": 120},
        {"key": "gen_ai.usage.output_tokens", "type": "int64", "value": 45},
        {"key": "session.cost_usd", "type": "float64", "value": 0.0123456789},
        {"key": "session.models", "type": "string", "value": "gpt-4o,gpt-4o-mini"},
        {"key": "error", "type": "bool", "value": True},
    ]
    process = trace["processes"][root["processID"]]
    assert process == {"serviceName": SESSION_SERVICE,
                       "tags": [{"key": "otel_sessions.synthetic", "type": "bool", "value": True}]}
    assert SESSION_SERVICE == "otel-sessions"


def test_every_span_is_in_it_with_roots_reparented():
    trace = session_trace(summary(), session_data())
    assert [s["operationName"] for s in trace["spans"]] == ["Checkout chat", "turn 1", "llm", "tool", "turn 2", "late"]
    spans = by_name(trace)
    under_root = {"refType": "CHILD_OF", "traceID": TRACE_HEX, "spanID": ROOT_HEX}
    assert spans["turn 1"]["references"] == [under_root]
    assert spans["llm"]["references"] == [{"refType": "CHILD_OF", "traceID": TRACE_HEX, "spanID": sid(1)}]
    assert spans["tool"]["references"] == [under_root]  # parent 99 not stored
    assert spans["late"]["references"] == [under_root]  # parent 1 is in another trace
    # the root reference comes first, the links stay
    assert spans["turn 2"]["references"] == [
        under_root, {"refType": "FOLLOWS_FROM", "traceID": LINKED_TRACE.hex(), "spanID": sid(7)}]


def test_spans_keep_their_trace_id_as_a_tag_and_get_session_tags():
    spans = by_name(session_trace(summary(), session_data()))
    for name, own in (("turn 1", TRACE_A), ("llm", TRACE_A), ("tool", TRACE_A), ("turn 2", TRACE_B),
                      ("late", TRACE_B)):
        assert tags(spans[name])[ORIGINAL_TRACE_TAG] == ("string", own.hex())
        assert tags(spans[name])["session.id"] == ("string", SESSION)
        assert tags(spans[name])["gen_ai.conversation.id"] == ("string", "t-1")
    assert ORIGINAL_TRACE_TAG not in tags(session_trace(summary(), session_data())["spans"][0])
    # a span's own user.id is not overwritten
    assert [t for t in spans["turn 2"]["tags"] if t["key"] == "user.id"] == [
        {"key": "user.id", "type": "string", "value": "someone-else"}]
    assert tags(spans["turn 1"])["user.id"] == ("string", "u-1")


def test_processes_are_shared_between_the_session_root_and_the_spans():
    trace = session_trace(summary(), session_data())
    assert trace["spans"][0]["processID"] == "p1"
    assert {s["processID"] for s in trace["spans"][1:]} == {"p2"}
    assert trace["processes"]["p2"]["serviceName"] == "checkout"
    assert set(trace["processes"]) == {"p1", "p2"}


def test_unnamed_session_without_errors_models_or_ids():
    plain = summary(name=None, user_id=None, thread_id=None, error_count=0, models=[])
    root = session_trace(plain, session_data())["spans"][0]
    assert root["operationName"] == f"session {SESSION}"
    keys = [t["key"] for t in root["tags"]]
    assert keys == ["session.id", "session.status", "session.trace_count", "session.span_count",
                    "session.error_count", "gen_ai.usage.input_tokens", "gen_ai.usage.output_tokens",
                    "session.cost_usd"]


def test_session_without_spans_spans_the_summary_times():
    trace = session_trace(summary(start_us=5_000_000.7, end_us=60_000_000.2), TracesData())
    assert len(trace["spans"]) == 1
    root = trace["spans"][0]
    assert root["startTime"] == 5_000_000 and root["duration"] == 55_000_000
    assert list(trace["processes"]) == [root["processID"]]


def test_a_span_of_the_synthetic_trace_keeps_no_original_tag():
    # a span already carrying the synthetic trace id is not tagged with it again
    data = TracesData()
    data.resource_spans.add(resource=Resource()).scope_spans.add().spans.append(
        span(session_trace_id(SESSION), 1, "odd", 1, 2))
    spans = by_name(session_trace(summary(), data))
    assert ORIGINAL_TRACE_TAG not in tags(spans["odd"])
    assert spans["odd"]["references"] == [{"refType": "CHILD_OF", "traceID": TRACE_HEX, "spanID": ROOT_HEX}]
