"""Two tenants write the same session ids, the same trace ids, the same user and thread ids,
over OTLP/gRPC and OTLP/HTTP (spans with the stock exporters, log records too). Every route is
then tried with no token, a wrong token and each scope of each tenant: only the right tenant
with the right scope gets an answer, and it holds that tenant's data only; another tenant's ids
are 404 (NOT_FOUND), never 403."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import grpc
import pytest
import redis
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from otel_sessions.exporter.tenants import DEFAULT_TENANT
from otel_sessions.v1 import session_service_pb2 as pb
from otel_sessions.v1 import session_service_pb2_grpc as pb_grpc
from tests.logs.helpers import grpc_export, post, record, request
from tests.support import RunningService
from tests.tenants.helpers import (
    METRICS_TOKEN,
    SCOPES,
    TENANTS,
    TOKENS,
    TRACE_GRPC,
    TRACE_HTTP,
    bearer,
    grpc_exporter,
    http_exporter,
    send_spans,
    write_tenants_file,
)

#: spans of sess-shared per tenant (differ, so an answer shows whose data it is)
SHARED_SPANS = {"team-a": 2, "team-b": 3}
TRACE_ONLY = {"team-a": 0x1AF7651916CD43DD8448EB211C8031A0, "team-b": 0x1BF7651916CD43DD8448EB211C8031B0}
ROOT_SPAN = "0000000000000002"  # FixedTraceIds: the first span id of each provider
TRACE_EXPORT = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"


def other(tenant: str) -> str:
    return TENANTS[1 - TENANTS.index(tenant)]


def _messages(tenant: str) -> str:
    return json.dumps([{"role": "user", "parts": [{"type": "text", "content": f"hello from {tenant}"}]}])


@pytest.fixture(scope="module")
def two(redis_server, tmp_path_factory):
    """A service with two tenants (and an operator), each tenant's data written the same way."""
    client = redis.Redis.from_url(redis_server.url)
    client.flushall()
    tenants_file = write_tenants_file(tmp_path_factory.mktemp("tenants"))
    with RunningService(redis_server.url, tenants=str(tenants_file)) as service:
        for tenant in TENANTS:
            token = TOKENS[tenant]["ingest"]
            shared = {"user.id": "u-shared", "gen_ai.conversation.id": "thr-shared",
                      "gen_ai.operation.name": "chat", "gen_ai.input.messages": _messages(tenant),
                      "gen_ai.request.model": "gpt-4o", "gen_ai.usage.input_tokens": 10}
            send_spans(grpc_exporter(service, token), TRACE_GRPC, tenant, "sess-shared", SHARED_SPANS[tenant],
                       **shared)
            send_spans(http_exporter(service, token), TRACE_HTTP, tenant, "sess-http", 1, **shared)
            send_spans(grpc_exporter(service, token), TRACE_ONLY[tenant], tenant, f"sess-only-{tenant}", 1,
                       **{"user.id": f"u-only-{tenant}", "gen_ai.conversation.id": f"thr-only-{tenant}"})
            logs = request([record(f"log of {tenant}", trace_id=TRACE_GRPC.to_bytes(16, "big"),
                                   **{"session.id": "sess-shared"})], service_name=f"svc-{tenant}")
            grpc_export(service, logs.SerializeToString(), metadata=(("authorization", f"Bearer {token}"),))
            logs = request([record(f"http log of {tenant}", **{"session.id": "sess-http"})],
                           service_name=f"svc-{tenant}")
            assert post(service, logs.SerializeToString(), headers=bearer(token))[0] == 200
        service.redis = client
        yield service
    client.close()


# --- clients: HTTP, SSE, gRPC; each gives (status, text) ----------------------------------
def _http(service, method: str, path: str, headers: dict, body: bytes | None = None,
          content_type: str | None = None) -> tuple[int, str]:
    heads = dict(headers)
    if content_type:
        heads["Content-Type"] = content_type
    req = urllib.request.Request(service.http_url + path, data=body, method=method, headers=heads)
    try:
        with urllib.request.urlopen(req, timeout=20) as response:
            if response.headers.get("Content-Type", "").startswith("text/event-stream"):
                return response.status, response.readline().decode()  # the tail's first line; then hang up
            return response.status, response.read().decode(errors="replace")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(errors="replace")


_GRPC_STATUS = {grpc.StatusCode.OK: 200, grpc.StatusCode.UNAUTHENTICATED: 401,
                grpc.StatusCode.PERMISSION_DENIED: 403, grpc.StatusCode.NOT_FOUND: 404,
                grpc.StatusCode.RESOURCE_EXHAUSTED: 429}


def _metadata(headers: dict):
    return (("authorization", headers["Authorization"]),) if "Authorization" in headers else None


def _rpc(service, method: str, message, headers: dict) -> tuple[int, str]:
    with grpc.insecure_channel(service.grpc_endpoint) as channel:
        stub = pb_grpc.SessionServiceStub(channel)
        try:
            reply = getattr(stub, method)(message, metadata=_metadata(headers), timeout=20)
        except grpc.RpcError as exc:
            return _GRPC_STATUS[exc.code()], exc.details() or ""
        return 200, str(reply)


def _tail_rpc(service, session_id: str, headers: dict) -> tuple[int, str]:
    with grpc.insecure_channel(service.grpc_endpoint) as channel:
        call = pb_grpc.SessionServiceStub(channel).TailSession(
            pb.TailSessionRequest(session_id=session_id), metadata=_metadata(headers), timeout=20)
        live = dict(call.initial_metadata()).get("x-otel-sessions-tail")
        if live == "live":
            call.cancel()
            return 200, live
        return _GRPC_STATUS[call.code()], call.details() or ""


def _export_rpc(service, headers: dict) -> tuple[int, str]:
    with grpc.insecure_channel(service.grpc_endpoint) as channel:
        try:
            channel.unary_unary(TRACE_EXPORT)(b"", metadata=_metadata(headers), timeout=20)
        except grpc.RpcError as exc:
            return _GRPC_STATUS[exc.code()], exc.details() or ""
        return 200, ""


def _mine(text: str, tenant: str) -> None:
    """The answer names ``tenant``'s service and never the other tenant's."""
    assert f"svc-{tenant}" in text or f"op-{tenant}" in text or f"of {tenant}" in text, text[:400]
    assert other(tenant) not in text, text[:400]


def _count(expected: dict[str, int], field: str):
    def check(text: str, tenant: str) -> None:
        assert json.loads(text)[field] == expected[tenant], text[:300]

    return check


def _no_check(_text: str, _tenant: str) -> None:
    pass


TG = f"{TRACE_GRPC:032x}"
#: (name, scope, call(service, headers) -> (status, text), check(text, tenant) on success)
ROUTES = [
    ("GET /v1/sessions", "read", lambda s, h: _http(s, "GET", "/v1/sessions", h), _mine),
    ("GET /v1/sessions/{id}", "read", lambda s, h: _http(s, "GET", "/v1/sessions/sess-shared", h),
     lambda text, t: (_mine(text, t), _count(SHARED_SPANS, "span_count")(text, t))),
    ("GET /v1/sessions/{id}/spans", "read", lambda s, h: _http(s, "GET", "/v1/sessions/sess-shared/spans", h), _mine),
    ("GET /v1/sessions/{id}/spans/{span}", "read",
     lambda s, h: _http(s, "GET", f"/v1/sessions/sess-shared/spans/{ROOT_SPAN}?trace_id={TG}", h), _mine),
    ("GET /v1/sessions/{id}/logs", "read", lambda s, h: _http(s, "GET", "/v1/sessions/sess-shared/logs", h), _mine),
    ("GET /v1/sessions/{id}/messages", "read",
     lambda s, h: _http(s, "GET", "/v1/sessions/sess-shared/messages", h),
     lambda text, t: (_mine(text.replace("hello from", "of"), t))),
    ("GET /v1/sessions/{id}/usage (web page)", "read",
     lambda s, h: _http(s, "GET", "/v1/sessions/sess-shared/usage", h),
     lambda text, t: len(json.loads(text)["data"]) == SHARED_SPANS[t] or pytest.fail(text[:300])),
    ("GET /v1/sessions/{id}/tail", "read", lambda s, h: _http(s, "GET", "/v1/sessions/sess-shared/tail", h),
     lambda text, _t: text.startswith(": tailing sess-shared") or pytest.fail(text)),
    ("GET /v1/threads/{id}", "read", lambda s, h: _http(s, "GET", "/v1/threads/thr-shared", h), _mine),
    ("GET /v1/threads/{id}/messages", "read", lambda s, h: _http(s, "GET", "/v1/threads/thr-shared/messages", h),
     lambda text, t: _mine(text.replace("hello from", "of"), t)),
    ("GET /v1/threads/{id}/logs", "read", lambda s, h: _http(s, "GET", "/v1/threads/thr-shared/logs", h), _mine),
    ("GET /v1/users/{id}/sessions", "read", lambda s, h: _http(s, "GET", "/v1/users/u-shared/sessions", h), _mine),
    ("GET /v1/traces/{id}", "read", lambda s, h: _http(s, "GET", f"/v1/traces/{TG}", h),
     _count(SHARED_SPANS, "span_count")),
    ("GET /api/services", "read", lambda s, h: _http(s, "GET", "/api/services", h), _mine),
    ("GET /api/services/{svc}/operations", "read",
     lambda s, h: _http(s, "GET", "/api/services/svc-team-a/operations", h),
     lambda text, t: (json.loads(text)["data"] != []) == (t == "team-a") or pytest.fail(text)),
    ("GET /api/operations", "read", lambda s, h: _http(s, "GET", "/api/operations?service=svc-team-b", h),
     lambda text, t: (json.loads(text)["data"] != []) == (t == "team-b") or pytest.fail(text)),
    ("GET /api/traces (search)", "read", lambda s, h: _http(s, "GET", "/api/traces?service=svc-team-a&limit=20", h),
     lambda text, t: (json.loads(text)["data"] != []) == (t == "team-a") or pytest.fail(text[:300])),
    ("GET /api/traces/{id}", "read", lambda s, h: _http(s, "GET", f"/api/traces/{TG}", h), _mine),
    ("GET /api/sessions/{id}/trace", "read", lambda s, h: _http(s, "GET", "/api/sessions/sess-shared/trace", h),
     _mine),
    ("GET /api/dependencies", "read", lambda s, h: _http(s, "GET", "/api/dependencies", h), _no_check),
    ("gRPC ListSessions", "read", lambda s, h: _rpc(s, "ListSessions", pb.ListSessionsRequest(), h), _mine),
    ("gRPC GetSession", "read", lambda s, h: _rpc(s, "GetSession", pb.GetSessionRequest(session_id="sess-shared"), h),
     _mine),
    ("gRPC GetSessionSpans", "read",
     lambda s, h: _rpc(s, "GetSessionSpans", pb.GetSessionSpansRequest(session_id="sess-shared"), h), _mine),
    ("gRPC GetSessionLogs", "read",
     lambda s, h: _rpc(s, "GetSessionLogs", pb.GetSessionLogsRequest(session_id="sess-shared"), h), _mine),
    ("gRPC GetThread", "read", lambda s, h: _rpc(s, "GetThread", pb.GetThreadRequest(thread_id="thr-shared"), h),
     _mine),
    ("gRPC TailSession", "read", lambda s, h: _tail_rpc(s, "sess-shared", h), _no_check),
    ("POST /v1/traces", "ingest",
     lambda s, h: _http(s, "POST", "/v1/traces", h, b"", "application/x-protobuf"), _no_check),
    ("gRPC TraceService/Export", "ingest", _export_rpc, _no_check),
    ("POST /v1/logs", "ingest", lambda s, h: _http(s, "POST", "/v1/logs", h, b"", "application/x-protobuf"),
     _no_check),
    ("GET /metrics", "metrics", lambda s, h: _http(s, "GET", "/metrics", h),
     lambda text, _t: 'otel_sessions_tenant_spans_stored_total{tenant="team-a"}' in text or pytest.fail(text[:300])),
]

#: every credential: (label, headers, tenant or None, scope or None)
CREDENTIALS = ([("no token", {}, None, None), ("wrong token", bearer("tok-nobody"), None, None),
                ("not a bearer token", {"Authorization": f"Basic {TOKENS['team-a']['read']}"}, None, None),
                ("empty bearer", {"Authorization": "Bearer "}, None, None)]
               + [(f"{tenant} {scope}", bearer(TOKENS[tenant][scope]), tenant, scope)
                  for tenant in TENANTS for scope in SCOPES]
               + [("ops metrics", bearer(METRICS_TOKEN), "ops", "metrics")])


@pytest.mark.parametrize(("name", "scope", "call", "check"), ROUTES, ids=[r[0] for r in ROUTES])
def test_only_the_right_tenant_and_scope_is_answered(two, name, scope, call, check):
    for label, headers, tenant, token_scope in CREDENTIALS:
        status, text = call(two, headers)
        if token_scope is None:
            assert status == 401, (name, label, status, text[:200])
        elif token_scope != scope:
            assert status == 403, (name, label, status, text[:200])
        else:
            assert status == 200, (name, label, status, text[:300])
            check(text, tenant)


def test_delete_needs_the_admin_scope_and_deletes_in_its_tenant_only(two):
    for label, headers, _tenant, token_scope in CREDENTIALS:
        if token_scope == "admin":
            continue
        status, _text = _http(two, "DELETE", "/v1/sessions/sess-http", headers)
        assert status == (401 if token_scope is None else 403), (label, status)
        rpc = _rpc(two, "DeleteSession", pb.DeleteSessionRequest(session_id="sess-http"), headers)
        assert rpc[0] == (401 if token_scope is None else 403), (label, rpc)
    for tenant in TENANTS:
        assert two.call(two.service.tenancy.store_of(tenant).get_session("sess-http")) is not None
    # team-a's admin deletes team-a's sess-http (REST); team-b's is still there
    assert _http(two, "DELETE", "/v1/sessions/sess-http", bearer(TOKENS["team-a"]["admin"]))[0] == 204
    assert _http(two, "GET", "/v1/sessions/sess-http", bearer(TOKENS["team-a"]["read"]))[0] == 404
    assert _http(two, "GET", "/v1/sessions/sess-http", bearer(TOKENS["team-b"]["read"]))[0] == 200
    # and over gRPC the other way round
    reply = _rpc(two, "DeleteSession", pb.DeleteSessionRequest(session_id="sess-http"), bearer(TOKENS["team-b"]["admin"]))
    assert reply[0] == 200
    assert _http(two, "GET", "/v1/sessions/sess-http", bearer(TOKENS["team-b"]["read"]))[0] == 404
    assert _http(two, "GET", "/v1/sessions/sess-shared", bearer(TOKENS["team-a"]["read"]))[0] == 200


@pytest.mark.parametrize("tenant", TENANTS)
def test_another_tenants_ids_are_not_found(two, tenant):
    theirs = other(tenant)
    read, admin = bearer(TOKENS[tenant]["read"]), bearer(TOKENS[tenant]["admin"])
    session, thread, user = f"sess-only-{theirs}", f"thr-only-{theirs}", f"u-only-{theirs}"
    trace = f"{TRACE_ONLY[theirs]:032x}"
    for path in (f"/v1/sessions/{session}", f"/v1/sessions/{session}/spans", f"/v1/sessions/{session}/logs",
                 f"/v1/sessions/{session}/messages", f"/v1/sessions/{session}/usage", f"/v1/sessions/{session}/tail",
                 f"/v1/sessions/{session}/spans/{ROOT_SPAN}", f"/v1/threads/{thread}", f"/v1/threads/{thread}/messages",
                 f"/v1/threads/{thread}/logs", f"/v1/users/{user}/sessions", f"/v1/traces/{trace}",
                 f"/api/traces/{trace}", f"/api/sessions/{session}/trace"):
        status, text = _http(two, "GET", path, read)
        assert status == 404, (path, status, text[:200])
    found = json.loads(_http(two, "GET", f"/api/traces?traceID={trace}", read)[1])
    assert found["data"] == [], found
    for method, message in (("GetSession", pb.GetSessionRequest(session_id=session)),
                            ("GetSessionSpans", pb.GetSessionSpansRequest(session_id=session)),
                            ("GetSessionLogs", pb.GetSessionLogsRequest(session_id=session)),
                            ("GetThread", pb.GetThreadRequest(thread_id=thread)),
                            ("DeleteSession", pb.DeleteSessionRequest(session_id=session))):
        status = _rpc(two, method, message, admin if method == "DeleteSession" else read)[0]
        assert status == 404, (method, status)
    assert _tail_rpc(two, session, read)[0] == 404
    assert _http(two, "DELETE", f"/v1/sessions/{session}", admin)[0] == 404
    listed = json.loads(_http(two, "GET", "/v1/sessions?limit=500", read)[1])
    assert session not in {s["id"] for s in listed["data"]}
    # their session is untouched
    assert _http(two, "GET", f"/v1/sessions/{session}", bearer(TOKENS[theirs]["read"]))[0] == 200


def test_each_tenants_data_is_in_its_own_namespace(two):
    for tenant in TENANTS:
        store = two.service.tenancy.store_of(tenant)
        shared = two.call(store.get_session("sess-shared", with_traces=True))
        assert shared.span_count == SHARED_SPANS[tenant] and shared.log_count == 1
        assert shared.services == [f"svc-{tenant}"]
        assert [t.trace_id for t in shared.traces] == [TG]
        assert two.call(store.get_trace_session(TRACE_GRPC.to_bytes(16, "big"))) == "sess-shared"
        logs = two.call(store.logs.get_logs("sess-shared"))
        assert f"log of {tenant}".encode() in logs.SerializeToString()
    keys = [key.decode() for key in two.redis.scan_iter(count=1000)]
    prefixes = {"ots:t.team-a:", "ots:t.team-b:"}
    stray = [key for key in keys if not any(key.startswith(p) for p in prefixes) and key != "ots:ready"]
    assert not stray, stray[:10]
    assert any(key.startswith("ots:t.team-a:{sess-shared}") for key in keys)
    assert any(key.startswith("ots:t.team-b:{sess-shared}") for key in keys)
    # the default tenant (no token reaches it with a tenants file) holds nothing
    assert two.call(two.service.tenancy.store_of(DEFAULT_TENANT).get_session("sess-shared")) is None


def test_a_tail_hears_its_own_tenant_only(two):
    with grpc.insecure_channel(two.grpc_endpoint) as channel:
        call = pb_grpc.SessionServiceStub(channel).TailSession(
            pb.TailSessionRequest(session_id="sess-shared"), metadata=_metadata(bearer(TOKENS["team-a"]["read"])),
            timeout=30)
        assert dict(call.initial_metadata()).get("x-otel-sessions-tail") == "live"
        send_spans(grpc_exporter(two, TOKENS["team-b"]["ingest"]), TRACE_GRPC, "team-b", "sess-shared", 1,
                   first_span=100)
        send_spans(grpc_exporter(two, TOKENS["team-a"]["ingest"]), TRACE_GRPC, "team-a", "sess-shared", 1,
                   first_span=100)
        first = next(iter(call))
        call.cancel()
    names = [span.name for rs in first.resource_spans for ss in rs.scope_spans for span in ss.spans]
    assert names == ["op-team-a"], names


def test_pages_files_health_and_readiness_need_no_token(two):
    for path in ("/healthz", "/readyz", "/", "/openapi.json"):
        assert _http(two, "GET", path, {})[0] == 200, path


def test_per_tenant_usage_in_metrics(two):
    status, text = _http(two, "GET", "/metrics", bearer(METRICS_TOKEN))
    assert status == 200
    lines = {line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
             if line.startswith("otel_sessions_tenant_")}
    for tenant in TENANTS:
        assert lines[f'otel_sessions_tenant_spans_stored_total{{tenant="{tenant}"}}'] >= SHARED_SPANS[tenant] + 2
        assert lines[f'otel_sessions_tenant_log_records_stored_total{{tenant="{tenant}"}}'] >= 2
        assert lines[f'otel_sessions_tenant_sessions{{tenant="{tenant}"}}'] >= 2
        assert lines[f'otel_sessions_tenant_redis_bytes{{tenant="{tenant}"}}'] > 0
    assert not any('tenant="tok-' in line for line in lines)  # tokens never label anything


def test_empty_export_bodies_are_fine_for_the_ingest_scope(two):
    body = ExportTraceServiceRequest().SerializeToString()
    status, _ = _http(two, "POST", "/v1/traces", bearer(TOKENS["team-a"]["ingest"]), body, "application/x-protobuf")
    assert status == 200
