"""The Jaeger-compatible query API (docs/interface.md): what Grafana's Jaeger data
source sends (services, operations, search by session.id / user.id / gen_ai.conversation.id,
trace by id, the synthetic session trace), answered in Jaeger's JSON shape.

The shape checked here is Jaeger's ``model/json`` (``Trace``, ``Span``, ``Reference``,
``KeyValue``, ``Log``, ``Process``) inside the query service's ``structuredResponse``
(``data``, ``total``, ``limit``, ``offset``, ``errors``), as ``cmd/query/app/http_handler.go``
writes it; the requests are those of Grafana's ``public/app/plugins/datasource/jaeger``
(``/api/services``, ``/api/services/{service}/operations``, ``/api/traces`` with ``service``,
``operation``, ``tags`` (JSON), ``minDuration``, ``maxDuration``, ``limit``, ``start``, ``end``
in µs and ``lookback=custom``, and ``/api/traces/{traceID}``).
"""

from __future__ import annotations

import hashlib
import json
import time
import urllib.error
import urllib.parse
import urllib.request

import pytest
from opentelemetry import trace as trace_api
from opentelemetry.trace import SpanKind, Status, StatusCode

from tests.stacks.helpers import send, tracer, wait_until
from tests.support import RunningService

ENVELOPE = {"data", "total", "limit", "offset", "errors"}
TRACE_KEYS = {"traceID", "spans", "processes", "warnings"}
SPAN_KEYS = {"traceID", "spanID", "operationName", "references", "startTime", "duration", "tags", "logs",
             "processID", "warnings"}
VALUE_TYPES = {"string": str, "bool": bool, "int64": int, "float64": float, "binary": str}
S = 1_000_000_000  # ns per second


def _span(t, name, start, end, parent=None, kind=SpanKind.INTERNAL, attributes=None, events=(), error=False):
    context = trace_api.set_span_in_context(parent) if parent is not None else None
    span = t.start_span(name, context=context, kind=kind, attributes=attributes or {}, start_time=start)
    for event_name, event_attributes, at in events:
        span.add_event(event_name, event_attributes, timestamp=at)
    if error:
        span.set_status(Status(StatusCode.ERROR, "tool failed"))
    span.end(end_time=end)
    return span


class Dataset:
    """Two sessions of one user in two services, a late span joined by trace, a trace with no session."""

    def __init__(self, endpoint: str) -> None:
        now = time.time_ns()
        self.t0 = t0 = now - 60 * S
        ids_a = {"session.id": "sess-a", "user.id": "u-1", "gen_ai.conversation.id": "t-1",
                 "session.name": "Support chat"}
        t, memory = tracer("test-app")
        chat = _span(t, "chat", t0, t0 + 2 * S, kind=SpanKind.SERVER, attributes=ids_a)
        _span(t, "llm call", t0 + S // 10, t0 + S, parent=chat, kind=SpanKind.CLIENT,
              attributes={**ids_a, "gen_ai.usage.input_tokens": 12, "gen_ai.request.model": "gpt-4o"},
              events=[("gen_ai.choice", {"index": 0}, t0 + S // 2)])
        _span(t, "tool", t0 + S, t0 + S + S // 5, parent=chat, attributes={**ids_a, "gen_ai.tool.name": "search"},
              error=True)
        send(endpoint, memory.get_finished_spans())
        self.trace_a1 = chat.get_span_context().trace_id.to_bytes(16, "big").hex()

        t, memory = tracer("test-app")
        follow = _span(t, "follow-up", t0 + 10 * S, t0 + 11 * S, kind=SpanKind.SERVER, attributes=ids_a)
        send(endpoint, memory.get_finished_spans())
        t, memory = tracer("test-app")  # from a service without the processor, in a later request
        _span(t, "late child", t0 + 10 * S + S // 10, t0 + 10 * S + S // 2, parent=follow)
        send(endpoint, memory.get_finished_spans())
        self.trace_a2 = follow.get_span_context().trace_id.to_bytes(16, "big").hex()

        t, memory = tracer("other-svc")
        ids_b = {"session.id": "sess-b", "user.id": "u-1", "gen_ai.conversation.id": "t-2"}
        answer = _span(t, "answer", t0 + 20 * S, t0 + 21 * S, kind=SpanKind.SERVER, attributes=ids_b)
        _span(t, "lookup", t0 + 20 * S, t0 + 20 * S + S // 10, parent=answer, kind=SpanKind.CLIENT,
              attributes=ids_b)
        send(endpoint, memory.get_finished_spans())
        self.trace_b1 = answer.get_span_context().trace_id.to_bytes(16, "big").hex()

        t, memory = tracer("test-app")
        lonely = _span(t, "lonely", t0 + 30 * S, t0 + 31 * S)
        send(endpoint, memory.get_finished_spans())
        self.trace_lonely = lonely.get_span_context().trace_id.to_bytes(16, "big").hex()
        self.start_us = (t0 - S) // 1000
        self.end_us = now // 1000 + 1_000_000


def _own_db(redis_server, db: int) -> str:
    """A flushed database of the suite's Redis for this module (the ``redis_url`` fixture flushes all)."""
    import redis

    url = redis_server.url.rsplit("/", 1)[0] + f"/{db}"
    client = redis.Redis.from_url(url)
    client.flushdb()
    client.close()
    return url


@pytest.fixture(scope="module")
def api(redis_server):
    with RunningService(_own_db(redis_server, 3)) as service:
        data = Dataset(service.grpc_endpoint)
        # the service and operation lists are written in the background after ingest
        wait_until(lambda: {"test-app", "other-svc"} <= set(_get(service, "/api/services")[1]["data"]),
                   message="services listed")
        yield service, data


def _get(service, path, params=None, headers=None):
    url = service.http_url + path + ("?" + urllib.parse.urlencode(params, doseq=True) if params else "")
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def _grafana_search(running, data, **params):
    """``/api/traces`` as Grafana's Jaeger data source sends it (time range in µs, lookback=custom)."""
    query = {"start": data.start_us, "end": data.end_us, "lookback": "custom", **params}
    if isinstance(query.get("tags"), dict):
        query["tags"] = json.dumps(query["tags"])
    status, body = _get(running, "/api/traces", query)
    assert status == 200, body
    assert_envelope(body)
    for trace in body["data"]:
        assert_jaeger_trace(trace)
    return body["data"]


def assert_envelope(body):
    assert set(body) == ENVELOPE
    assert isinstance(body["total"], int) and body["limit"] == 0 and body["offset"] == 0


def assert_kv(kv):
    assert set(kv) == {"key", "type", "value"}
    assert isinstance(kv["key"], str)
    assert isinstance(kv["value"], VALUE_TYPES[kv["type"]])


def assert_jaeger_trace(trace):
    assert set(trace) == TRACE_KEYS
    assert len(trace["traceID"]) == 32 and int(trace["traceID"], 16) >= 0
    assert trace["warnings"] is None
    for process in trace["processes"].values():
        assert set(process) == {"serviceName", "tags"}
        assert isinstance(process["serviceName"], str)
        for kv in process["tags"]:
            assert_kv(kv)
    span_ids = set()
    for span in trace["spans"]:
        assert set(span) == SPAN_KEYS
        assert span["traceID"] == trace["traceID"]
        assert len(span["spanID"]) == 16 and int(span["spanID"], 16) >= 0
        span_ids.add(span["spanID"])
        assert isinstance(span["operationName"], str)
        assert isinstance(span["startTime"], int) and span["startTime"] > 1_000_000_000_000_000  # µs
        assert isinstance(span["duration"], int) and span["duration"] >= 0
        assert span["processID"] in trace["processes"]
        assert span["warnings"] is None
        for ref in span["references"]:
            assert set(ref) == {"refType", "traceID", "spanID"}
            assert ref["refType"] in ("CHILD_OF", "FOLLOWS_FROM")
        for kv in span["tags"]:
            assert_kv(kv)
        for log in span["logs"]:
            assert set(log) == {"timestamp", "fields"} and isinstance(log["timestamp"], int)
            for kv in log["fields"]:
                assert_kv(kv)
    assert len(span_ids) == len(trace["spans"])


def _tags(span) -> dict:
    return {kv["key"]: kv["value"] for kv in span["tags"]}


def _spans(trace) -> dict:
    return {span["operationName"]: span for span in trace["spans"]}


def synthetic_id(session_id: str) -> str:
    return hashlib.sha256(session_id.encode()).hexdigest()[:32]


# --- services and operations -------------------------------------------------------------------
def test_services(api):
    service, _data = api
    status, body = _get(service, "/api/services")
    assert status == 200
    assert_envelope(body)
    assert body["data"] == sorted(["otel-sessions", "other-svc", "test-app"])
    assert body["total"] == 3 and body["errors"] is None


def test_service_operations_as_grafana_asks(api):
    service, _data = api
    status, body = _get(service, "/api/services/test-app/operations")
    assert status == 200
    assert_envelope(body)
    assert body["data"] == ["chat", "follow-up", "late child", "llm call", "lonely", "tool"]
    assert body["total"] == 6
    assert _get(service, "/api/services/other-svc/operations")[1]["data"] == ["answer", "lookup"]
    assert _get(service, "/api/services/nobody/operations")[1]["data"] == []


def test_operations_with_span_kind(api):
    service, _data = api
    body = _get(service, "/api/operations", {"service": "test-app", "spanKind": "server"})[1]
    assert_envelope(body)
    assert body["data"] == [{"name": "chat", "spanKind": "server"}, {"name": "follow-up", "spanKind": "server"}]
    every = _get(service, "/api/operations", {"service": "test-app"})[1]["data"]
    assert {"name": "llm call", "spanKind": "client"} in every and len(every) == 6
    status, body = _get(service, "/api/operations")
    assert status == 400 and body["errors"][0]["code"] == 400


# --- search ------------------------------------------------------------------------------------
def test_search_by_session_id_returns_its_traces_and_the_session_trace(api):
    service, data = api
    traces = _grafana_search(service, data, service="test-app", tags={"session.id": "sess-a"}, limit=20)
    ids = [t["traceID"] for t in traces]
    assert set(ids) == {synthetic_id("sess-a"), data.trace_a1, data.trace_a2}
    assert ids[0] == synthetic_id("sess-a")
    a2 = next(t for t in traces if t["traceID"] == data.trace_a2)
    late = _spans(a2)["late child"]
    assert _tags(late)["session.id"] == "sess-a"  # joined by trace: the tag is added
    assert _tags(late)["user.id"] == "u-1" and _tags(late)["gen_ai.conversation.id"] == "t-1"
    assert late["references"] == [{"refType": "CHILD_OF", "traceID": data.trace_a2,
                                   "spanID": _spans(a2)["follow-up"]["spanID"]}]


def test_search_by_user_id_and_by_conversation_id(api):
    service, data = api
    by_user_app = _grafana_search(service, data, service="test-app", tags={"user.id": "u-1"})
    assert {t["traceID"] for t in by_user_app} == {data.trace_a1, data.trace_a2}
    by_user_other = _grafana_search(service, data, service="other-svc", tags={"user.id": "u-1"})
    assert {t["traceID"] for t in by_user_other} == {data.trace_b1}
    sessions_of_user = _grafana_search(service, data, service="otel-sessions", tags={"user.id": "u-1"})
    assert {t["traceID"] for t in sessions_of_user} == {synthetic_id("sess-a"), synthetic_id("sess-b")}
    by_thread = _grafana_search(service, data, service="other-svc", tags={"gen_ai.conversation.id": "t-2"})
    assert {t["traceID"] for t in by_thread} == {data.trace_b1}
    assert _grafana_search(service, data, service="test-app", tags={"gen_ai.conversation.id": "t-2"}) == []
    assert _grafana_search(service, data, service="test-app", tags={"user.id": "nobody"}) == []


def test_search_filters_like_jaeger(api):
    service, data = api
    # operation, span tags (logfmt converted to JSON by Grafana, or the tag=k:v form), durations
    found = _grafana_search(service, data, service="test-app", operation="tool")
    assert [t["traceID"] for t in found] == [data.trace_a1]
    found = _grafana_search(service, data, service="test-app", tags={"error": "true"})
    assert [t["traceID"] for t in found] == [data.trace_a1]
    found = _grafana_search(service, data, service="test-app", tag="gen_ai.tool.name:search")
    assert [t["traceID"] for t in found] == [data.trace_a1]
    found = _grafana_search(service, data, service="test-app", minDuration="1.5s")
    assert [t["traceID"] for t in found] == [data.trace_a1]  # only "chat" lasts 2 s
    found = _grafana_search(service, data, service="test-app", operation="chat", maxDuration="100ms")
    assert found == []
    found = _grafana_search(service, data, service="test-app", tags={"gen_ai.choice": "x"})
    assert found == []
    everything = _grafana_search(service, data, service="test-app")
    assert {t["traceID"] for t in everything} == {data.trace_a1, data.trace_a2}
    assert len(_grafana_search(service, data, service="test-app", limit=1)) == 1
    # a time range before the data: nothing
    assert _get(service, "/api/traces", {"service": "test-app", "start": 1, "end": 2})[1]["data"] == []


def test_search_rejects_bad_parameters_in_jaeger_error_shape(api):
    service, _data = api
    for params in ({"service": "test-app", "minDuration": "fast"}, {"service": "test-app", "tags": "{not json"},
                   {"service": "test-app", "minDuration": "2s", "maxDuration": "1s"},
                   {"service": "test-app", "start": "yesterday"}, {"operation": "chat"}):
        status, body = _get(service, "/api/traces", params)
        assert status == 400, params
        assert_envelope(body)
        assert body["data"] is None and body["errors"][0]["code"] == 400 and body["errors"][0]["msg"]


# --- traces by id --------------------------------------------------------------------------------
def test_trace_by_id_field_by_field(api):
    service, data = api
    status, body = _get(service, f"/api/traces/{data.trace_a1}")
    assert status == 200
    assert_envelope(body)
    assert body["errors"] is None and len(body["data"]) == 1
    trace = body["data"][0]
    assert_jaeger_trace(trace)
    spans = _spans(trace)
    assert set(spans) == {"chat", "llm call", "tool"}
    chat, llm, tool = spans["chat"], spans["llm call"], spans["tool"]
    assert chat["references"] == []
    assert llm["references"] == [{"refType": "CHILD_OF", "traceID": data.trace_a1, "spanID": chat["spanID"]}]
    assert chat["startTime"] == data.t0 // 1000 and chat["duration"] == 2_000_000
    assert llm["duration"] == 900_000
    assert _tags(chat)["span.kind"] == "server" and _tags(llm)["span.kind"] == "client"
    assert {"key": "gen_ai.usage.input_tokens", "type": "int64", "value": 12} in llm["tags"]
    assert {"key": "otel.scope.name", "type": "string", "value": "tests.stacks"} in llm["tags"]
    assert _tags(tool)["error"] is True and _tags(tool)["otel.status_code"] == "ERROR"
    assert _tags(tool)["otel.status_description"] == "tool failed"
    assert llm["logs"] == [{"timestamp": (data.t0 + S // 2) // 1000, "fields": [
        {"key": "event", "type": "string", "value": "gen_ai.choice"},
        {"key": "index", "type": "int64", "value": 0}]}]
    process = trace["processes"][chat["processID"]]
    assert process["serviceName"] == "test-app"
    assert {"key": "telemetry.sdk.language", "type": "string", "value": "python"} in process["tags"]
    assert all(kv["key"] != "service.name" for kv in process["tags"])


def test_trace_without_session_is_served_by_id(api):
    service, data = api
    status, body = _get(service, f"/api/traces/{data.trace_lonely}")
    assert status == 200
    (trace,) = body["data"]
    assert [s["operationName"] for s in trace["spans"]] == ["lonely"]
    assert "session.id" not in _tags(trace["spans"][0])


def test_unknown_trace_is_404_in_jaeger_error_shape(api):
    service, _data = api
    status, body = _get(service, "/api/traces/0123456789abcdef0123456789abcdef")
    assert status == 404
    assert body == {"data": None, "total": 0, "limit": 0, "offset": 0,
                    "errors": [{"code": 404, "msg": "trace not found"}]}
    status, body = _get(service, "/api/traces/not-hex")
    assert status == 400 and body["errors"][0]["code"] == 400
    status, body = _get(service, "/api/traces", {"traceID": ["0" * 31 + "1", ]})
    assert status == 200 and body["data"] == [] and body["errors"][0]["msg"] == "trace not found"


# --- the synthetic session trace -----------------------------------------------------------------
def test_session_as_one_trace_has_every_span_under_one_root(api):
    service, data = api
    trace_id = synthetic_id("sess-a")
    status, body = _get(service, f"/api/traces/{trace_id}")
    assert status == 200
    (trace,) = body["data"]
    assert_jaeger_trace(trace)
    assert trace["traceID"] == trace_id
    root = trace["spans"][0]
    assert root["operationName"] == "Support chat" and root["references"] == []
    assert root["spanID"] == hashlib.sha256(b"sess-a").hexdigest()[32:48]
    assert trace["processes"][root["processID"]]["serviceName"] == "otel-sessions"
    tags = _tags(root)
    assert tags["session.id"] == "sess-a" and tags["user.id"] == "u-1" and tags["gen_ai.conversation.id"] == "t-1"
    assert tags["session.span_count"] == 5 and tags["session.trace_count"] == 2 and tags["error"] is True
    spans = {s["spanID"]: s for s in trace["spans"]}
    assert sorted(s["operationName"] for s in trace["spans"][1:]) == [
        "chat", "follow-up", "late child", "llm call", "tool"]
    for span in trace["spans"][1:]:  # every span leads up to the root
        hops, current = 0, span
        while current["references"]:
            parent = [r for r in current["references"] if r["refType"] == "CHILD_OF"][0]
            assert parent["traceID"] == trace_id
            current = spans[parent["spanID"]]
            hops += 1
        assert current is root and hops >= 1
        assert _tags(span)["otel_sessions.trace_id"] in (data.trace_a1, data.trace_a2)
    assert root["startTime"] == data.t0 // 1000 and root["duration"] == 11_000_000
    # the convenience route gives the same trace
    assert _get(service, "/api/sessions/sess-a/trace")[1]["data"][0] == trace
    status, body = _get(service, "/api/sessions/nope/trace")
    assert status == 404 and body["errors"][0]["code"] == 404


def test_session_service_search_and_dependencies(api):
    service, data = api
    found = _grafana_search(service, data, service="otel-sessions", tags={"session.id": "sess-b"})
    assert [t["traceID"] for t in found] == [synthetic_id("sess-b")]
    assert [s["operationName"] for s in found[0]["spans"]] == ["session sess-b", "answer", "lookup"]
    assert _get(service, "/api/services/otel-sessions/operations")[1]["data"] == []
    status, body = _get(service, "/api/dependencies", {"endTs": data.end_us // 1000, "lookback": 3600000})
    assert status == 200 and body["data"] == []


def test_query_token_guards_the_api(redis_server):
    with RunningService(_own_db(redis_server, 4), query_token="s3cret") as service:
        status, body = _get(service, "/api/services")
        assert status == 401 and body["errors"][0]["code"] == 401
        status, body = _get(service, "/api/services", headers={"Authorization": "Bearer s3cret"})
        assert status == 200 and "otel-sessions" in body["data"]


def test_every_key_the_api_index_writes_has_a_ttl(api):
    import redis

    service, _data = api
    client = redis.Redis.from_url(service.redis_url)
    try:
        keys = list(client.scan_iter(count=1000))
        index_keys = [k for k in keys if b"{jo:" in k or b":s:" in k]
        assert index_keys  # services, operations and synthetic trace ids were written
        assert all(client.pttl(k) > 0 for k in keys)
    finally:
        client.close()
