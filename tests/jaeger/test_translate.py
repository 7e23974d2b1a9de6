"""OTLP spans as Jaeger JSON (``span_to_jaeger``, ``traces_to_jaeger``), on hand-built
``TracesData``: what Jaeger's own OTLP translator writes, plus a known session's tags."""

from __future__ import annotations

import base64
import json

from opentelemetry.proto.common.v1.common_pb2 import AnyValue, InstrumentationScope
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status, TracesData

from otel_sessions.exporter.jaeger.translate import (
    ORIGINAL_TRACE_TAG,
    SessionIds,
    span_to_jaeger,
    traces_to_jaeger,
)
from tests.jaeger.builders import (
    CHECKOUT,
    LINKED_TRACE,
    NAMELESS,
    SCOPE,
    TRACE_A,
    TRACE_B,
    S,
    keys,
    kv,
    sid,
    span,
    tags,
)


def rich_span() -> Span:
    array = AnyValue()
    array.array_value.values.extend([AnyValue(string_value="a"), AnyValue(int_value=2)])
    kvlist = AnyValue()
    kvlist.kvlist_value.values.extend([kv("x", True), kv("y", b"\x01\x02")])
    return span(
        TRACE_A, 1, "POST /pay", 100, 101.5,
        kind=Span.SPAN_KIND_SERVER,
        attributes=[kv("http.method", "POST"), kv("retry", True), kv("http.status_code", 500),
                    kv("ratio", 0.25), kv("blob", b"\x00\xff"), kv("list", array), kv("map", kvlist),
                    kv("unset", AnyValue()), kv("user.id", "own-user")],
        status=Status(code=Status.STATUS_CODE_ERROR, message="card declined"),
        trace_state="vendor=1",
        events=[Span.Event(name="retrying", time_unix_nano=int(100.25 * S), attributes=[kv("attempt", 2)]),
                Span.Event(name="gave up", time_unix_nano=int(101 * S))],
        links=[Span.Link(trace_id=LINKED_TRACE, span_id=(77).to_bytes(8, "big"))],
    )


def test_span_fields_and_tags():
    ids = SessionIds("s-1", thread_id="t-1", user_id="u-1")
    out = span_to_jaeger(rich_span(), SCOPE, "p1", ids)
    assert set(out) == {"traceID", "spanID", "operationName", "references", "startTime", "duration", "tags",
                        "logs", "processID", "warnings"}
    assert out["traceID"] == TRACE_A.hex()
    assert out["spanID"] == sid(1)
    assert out["operationName"] == "POST /pay"
    assert out["startTime"] == 100_000_000  # µs
    assert out["duration"] == 1_500_000
    assert out["processID"] == "p1"
    assert out["warnings"] is None
    assert out["tags"] == [
        {"key": "http.method", "type": "string", "value": "POST"},
        {"key": "retry", "type": "bool", "value": True},
        {"key": "http.status_code", "type": "int64", "value": 500},
        {"key": "ratio", "type": "float64", "value": 0.25},
        {"key": "blob", "type": "binary", "value": base64.b64encode(b"\x00\xff").decode()},
        {"key": "list", "type": "string", "value": '["a",2]'},
        {"key": "map", "type": "string", "value": json.dumps({"x": True, "y": "AQI="}, separators=(",", ":"))},
        {"key": "unset", "type": "string", "value": ""},
        {"key": "user.id", "type": "string", "value": "own-user"},
        # session tags only where the span lacks them: its own user.id stays, alone
        {"key": "session.id", "type": "string", "value": "s-1"},
        {"key": "gen_ai.conversation.id", "type": "string", "value": "t-1"},
        {"key": "otel.scope.name", "type": "string", "value": "agent-sdk"},
        {"key": "otel.scope.version", "type": "string", "value": "1.2.3"},
        {"key": "span.kind", "type": "string", "value": "server"},
        {"key": "otel.status_code", "type": "string", "value": "ERROR"},
        {"key": "error", "type": "bool", "value": True},
        {"key": "otel.status_description", "type": "string", "value": "card declined"},
        {"key": "w3c.tracestate", "type": "string", "value": "vendor=1"},
    ]


def test_events_become_logs():
    out = span_to_jaeger(rich_span(), SCOPE, "p1", None)
    assert out["logs"] == [
        {"timestamp": 100_250_000, "fields": [{"key": "event", "type": "string", "value": "retrying"},
                                              {"key": "attempt", "type": "int64", "value": 2}]},
        {"timestamp": 101_000_000, "fields": [{"key": "event", "type": "string", "value": "gave up"}]},
    ]


def test_links_become_follows_from_after_the_parent():
    root = span_to_jaeger(rich_span(), SCOPE, "p1", None)
    assert root["references"] == [{"refType": "FOLLOWS_FROM", "traceID": LINKED_TRACE.hex(), "spanID": sid(77)}]
    child = span(TRACE_A, 2, "charge", 100.1, 100.2, parent=1,
                 links=[Span.Link(trace_id=LINKED_TRACE, span_id=(78).to_bytes(8, "big"))])
    out = span_to_jaeger(child, SCOPE, "p1", None)
    assert out["references"] == [
        {"refType": "CHILD_OF", "traceID": TRACE_A.hex(), "spanID": sid(1)},
        {"refType": "FOLLOWS_FROM", "traceID": LINKED_TRACE.hex(), "spanID": sid(78)},
    ]


def test_without_session_no_session_tags():
    out = span_to_jaeger(rich_span(), SCOPE, "p1", None)
    assert "session.id" not in tags(out) and "gen_ai.conversation.id" not in tags(out)
    assert [k for k in keys(out) if k == "user.id"] == ["user.id"]


def test_session_tags_added_when_missing_and_set():
    plain = span(TRACE_A, 3, "plain", 1, 2)
    all_ids = span_to_jaeger(plain, InstrumentationScope(), "p1", SessionIds("s-1", "t-1", "u-1"))
    assert all_ids["tags"] == [
        {"key": "session.id", "type": "string", "value": "s-1"},
        {"key": "gen_ai.conversation.id", "type": "string", "value": "t-1"},
        {"key": "user.id", "type": "string", "value": "u-1"},
    ]
    only_session = span_to_jaeger(plain, InstrumentationScope(), "p1", SessionIds("s-1"))
    assert only_session["tags"] == [{"key": "session.id", "type": "string", "value": "s-1"}]
    own = span(TRACE_A, 4, "own", 1, 2, attributes=[kv("session.id", "alias-id"), kv("gen_ai.conversation.id", "t-0")])
    kept = span_to_jaeger(own, InstrumentationScope(), "p1", SessionIds("s-1", "t-1", "u-1"))
    assert kept["tags"] == [
        {"key": "session.id", "type": "string", "value": "alias-id"},
        {"key": "gen_ai.conversation.id", "type": "string", "value": "t-0"},
        {"key": "user.id", "type": "string", "value": "u-1"},
    ]


def test_kinds_and_statuses():
    expected_kind = {Span.SPAN_KIND_UNSPECIFIED: None, Span.SPAN_KIND_INTERNAL: "internal",
                     Span.SPAN_KIND_SERVER: "server", Span.SPAN_KIND_CLIENT: "client",
                     Span.SPAN_KIND_PRODUCER: "producer", Span.SPAN_KIND_CONSUMER: "consumer"}
    for kind, name in expected_kind.items():
        out = tags(span_to_jaeger(span(TRACE_A, 5, "k", 1, 2, kind=kind), SCOPE, "p1", None))
        assert out.get("span.kind") == (("string", name) if name else None)
    ok = tags(span_to_jaeger(span(TRACE_A, 5, "ok", 1, 2, status=Status(code=Status.STATUS_CODE_OK)),
                             SCOPE, "p1", None))
    assert ok["otel.status_code"] == ("string", "OK")
    assert "error" not in ok and "otel.status_description" not in ok
    unset = tags(span_to_jaeger(span(TRACE_A, 5, "unset", 1, 2), SCOPE, "p1", None))
    assert "otel.status_code" not in unset and "error" not in unset and "span.kind" not in unset
    no_scope = tags(span_to_jaeger(span(TRACE_A, 5, "s", 1, 2), InstrumentationScope(), "p1", None))
    assert "otel.scope.name" not in no_scope and "otel.scope.version" not in no_scope


def test_end_before_start_is_zero_duration():
    out = span_to_jaeger(span(TRACE_A, 6, "odd", 5, 4), SCOPE, "p1", None)
    assert out["startTime"] == 5_000_000 and out["duration"] == 0


def test_trace_id_override_tags_the_original_trace():
    synthetic = "ab" * 16
    moved = span_to_jaeger(span(TRACE_A, 2, "child", 1, 2, parent=1), SCOPE, "p1", None, trace_id=synthetic)
    assert moved["traceID"] == synthetic
    assert moved["references"][0] == {"refType": "CHILD_OF", "traceID": synthetic, "spanID": sid(1)}
    assert tags(moved)[ORIGINAL_TRACE_TAG] == ("string", TRACE_A.hex())
    same = span_to_jaeger(span(TRACE_A, 2, "child", 1, 2, parent=1), SCOPE, "p1", None, trace_id=TRACE_A.hex())
    assert ORIGINAL_TRACE_TAG not in tags(same)


def traces_data() -> TracesData:
    data = TracesData()
    rs = data.resource_spans.add(resource=CHECKOUT)
    rs.scope_spans.add(scope=SCOPE).spans.extend([
        span(TRACE_A, 1, "root", 10, 20, kind=Span.SPAN_KIND_SERVER),
        span(TRACE_B, 9, "other trace", 30, 31),
    ])
    rs.scope_spans.add(scope=InstrumentationScope(name="db")).spans.append(
        span(TRACE_A, 2, "query", 11, 12, parent=1, kind=Span.SPAN_KIND_CLIENT))
    data.resource_spans.add(resource=NAMELESS).scope_spans.add().spans.append(
        span(TRACE_A, 3, "worker", 13, 14, parent=1))
    data.resource_spans.add(resource=CHECKOUT).scope_spans.add(scope=SCOPE).spans.append(
        span(TRACE_A, 4, "again", 15, 16, parent=1))
    return data


def test_traces_to_jaeger_groups_by_trace_with_processes():
    built = traces_to_jaeger(traces_data(), SessionIds("s-1"))
    assert [b.trace_id for b in built] == [TRACE_A.hex(), TRACE_B.hex()]
    a, b = (b.to_json() for b in built)
    assert set(a) == {"traceID", "spans", "processes", "warnings"} and a["warnings"] is None
    assert [s["operationName"] for s in a["spans"]] == ["root", "query", "worker", "again"]
    assert all(s["traceID"] == TRACE_A.hex() for s in a["spans"])
    # one process per distinct resource, numbered per trace; the same resource twice is one process
    assert [s["processID"] for s in a["spans"]] == ["p1", "p1", "p2", "p1"]
    assert a["processes"] == {
        "p1": {"serviceName": "checkout", "tags": [{"key": "host.name", "type": "string", "value": "h1"},
                                                   {"key": "process.pid", "type": "int64", "value": 42}]},
        "p2": {"serviceName": "unknown_service",
               "tags": [{"key": "telemetry.sdk.language", "type": "string", "value": "python"}]},
    }
    assert a["spans"][1]["references"] == [{"refType": "CHILD_OF", "traceID": TRACE_A.hex(), "spanID": sid(1)}]
    assert tags(a["spans"][1])["otel.scope.name"] == ("string", "db")
    assert all(tags(s)["session.id"] == ("string", "s-1") for s in a["spans"])
    assert [s["operationName"] for s in b["spans"]] == ["other trace"]
    assert b["processes"] == {"p1": a["processes"]["p1"]}
    assert built[0].start_us == 10_000_000 and built[1].start_us == 30_000_000


def test_traces_to_jaeger_keeps_only_the_asked_trace():
    built = traces_to_jaeger(traces_data(), None, only=TRACE_B)
    assert [b.trace_id for b in built] == [TRACE_B.hex()]
    assert "session.id" not in tags(built[0].spans[0])
    assert traces_to_jaeger(traces_data(), None, only=LINKED_TRACE) == []
    assert traces_to_jaeger(TracesData(), None) == []
