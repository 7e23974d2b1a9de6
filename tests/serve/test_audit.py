"""The audit log on a real service: deletions and refused requests (REST, the page's route, the
Jaeger API, OTLP/HTTP, OTLP/gRPC, the SessionService, the Host check, CORS) give one line each
with route, client and status; and no log line of a run with tokens configured, refusals and
wrong tokens included, holds a token."""

from __future__ import annotations

import logging
import re

import grpc
import pytest
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpExporter
from opentelemetry.sdk.trace.export import SpanExportResult

from otel_sessions.exporter import audit_log
from otel_sessions.exporter.audit_log import AUDIT_LOGGER, grpc_peer, record, record_refusal
from otel_sessions.exporter.errors import NotFound, PermissionDenied, Throttled
from otel_sessions.v1 import session_service_pb2 as pb
from otel_sessions.v1 import session_service_pb2_grpc as pb_grpc
from tests.ingest.test_bad_input import InMemoryOne
from tests.serve.test_http_edges import request
from tests.support import RunningService

INGEST = "ingest-7f3a9c1e5b88d2"
QUERY = "query-c0ffee42d1e9a7"
WRONG = "query-c0ffee42d1e9a8"  # one character off: a near miss must not be logged either
SECRETS = (INGEST, QUERY, WRONG, "ingest-wrong-5d1c7e")


@pytest.fixture()
def guarded(redis_url, tmp_path):
    (tmp_path / "ingest.token").write_text(INGEST + "\n")
    (tmp_path / "query.token").write_text(f"  {QUERY}\n\n")
    with RunningService(redis_url, ingest_token_file=str(tmp_path / "ingest.token"),
                        query_token_file=str(tmp_path / "query.token"), cors_origins="https://app.example.com",
                        log_level="debug") as running:
        yield running


@pytest.fixture(autouse=True)
def _no_earlier_refusals():
    """Refusals recorded by earlier tests (same route and client) would hold back these lines."""
    audit_log._recent.clear()
    yield
    audit_log._recent.clear()


def _audit_lines(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == AUDIT_LOGGER]


def _one(lines: list[str], *parts: str) -> str:
    found = [line for line in lines if all(part in line for part in parts)]
    assert len(found) == 1, (parts, lines)
    return found[0]


def test_refusals_and_deletions_are_audited_and_no_token_is_logged(guarded, caplog, capfd):
    caplog.set_level(logging.DEBUG)
    bearer = {"Authorization": f"Bearer {WRONG}"}
    # REST lookups: no token, a wrong one, the right one
    assert request(guarded, "GET", "/v1/sessions")[0] == 401
    assert request(guarded, "GET", f"/v1/sessions?token={QUERY}", bearer)[0] == 401  # the query string is not logged
    assert request(guarded, "GET", "/v1/sessions", {"Authorization": f"Bearer {QUERY}"})[0] == 200
    # the page's own route and the Jaeger-compatible API
    assert request(guarded, "GET", "/v1/sessions/sess-x/usage", bearer)[0] == 401
    assert request(guarded, "GET", "/api/services", bearer)[0] == 401
    # OTLP/HTTP and OTLP/gRPC ingest with a wrong token, then with the right one
    spans = InMemoryOne("sess-audit").spans
    wrong_http = HttpExporter(endpoint=guarded.http_url + "/v1/traces", headers={"authorization": "Bearer ingest-wrong-5d1c7e"})
    assert wrong_http.export(spans) == SpanExportResult.FAILURE
    wrong_grpc = GrpcExporter(endpoint=guarded.grpc_endpoint, insecure=True,
                              headers=(("authorization", "Bearer ingest-wrong-5d1c7e"),), timeout=5)
    assert wrong_grpc.export(spans) == SpanExportResult.FAILURE
    right = HttpExporter(endpoint=guarded.http_url + "/v1/traces", headers={"authorization": f"Bearer {INGEST}"})
    assert right.export(spans) == SpanExportResult.SUCCESS
    # the SessionService: refused, then a deletion
    with grpc.insecure_channel(guarded.grpc_endpoint) as channel:
        stub = pb_grpc.SessionServiceStub(channel)
        with pytest.raises(grpc.RpcError) as refused:
            stub.ListSessions(pb.ListSessionsRequest(), metadata=(("authorization", f"Bearer {WRONG}"),), timeout=10)
        assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
        stub.DeleteSession(pb.DeleteSessionRequest(session_id="sess-audit"),
                           metadata=(("authorization", f"Bearer {QUERY}"),), timeout=10)
    assert right.export(InMemoryOne("sess-audit-2").spans) == SpanExportResult.SUCCESS
    # REST deletion; a Host the service does not serve; a CORS preflight from an unlisted origin
    assert request(guarded, "DELETE", "/v1/sessions/sess-audit-2", {"Authorization": f"Bearer {QUERY}"})[0] == 204
    assert request(guarded, "GET", "/v1/sessions", {"Host": "evil.example", "Authorization": f"Bearer {QUERY}"})[0] == 421
    assert request(guarded, "OPTIONS", "/v1/traces", {"Origin": "https://evil.example",
                                                      "Access-Control-Request-Method": "POST"})[0] == 403

    lines = _audit_lines(caplog)
    # two refusals of GET /v1/sessions from one client within REPEAT_S: one line
    assert len([line for line in lines if 'route="GET /v1/sessions"' in line and "status=401" in line
                and "client=127.0.0.1 " in line]) == 1
    _one(lines, "refused status=401", 'route="GET /v1/sessions/sess-x/usage"')
    _one(lines, "refused status=401", 'route="GET /api/services"')
    _one(lines, "refused status=401", 'route="POST /v1/traces"', "client=127.0.0.1")
    _one(lines, "refused status=401", "route=opentelemetry.proto.collector.trace.v1.TraceService/Export",
         "client=127.0.0.1:")
    _one(lines, "refused status=401", "route=SessionService/ListSessions")
    _one(lines, "deleted", "route=SessionService/DeleteSession", "target=sess-audit", "client=127.0.0.1:")
    _one(lines, "deleted", 'route="DELETE /v1/sessions/sess-audit-2"', "status=204", "target=sess-audit-2")
    _one(lines, "refused status=421", "evil.example")
    _one(lines, "refused status=403", 'route="OPTIONS /v1/traces"', "evil.example")
    # an unknown token names no tenant; a deletion names the deleting token's tenant
    assert all("tenant=-" in line for line in lines if "refused" in line)
    assert all("tenant=default" in line for line in lines if "deleted" in line)
    assert "reason=" in _one(lines, "route=SessionService/ListSessions")  # the client-facing message

    # no token anywhere: log records (messages, arguments, tracebacks) and the process's output
    out, err = capfd.readouterr()
    logged = [r.getMessage() + " " + repr(r.args) + " " + str(r.exc_text or "") for r in caplog.records]
    assert len(logged) > len(lines)  # the service logged more than the audit lines (debug level)
    for secret in SECRETS:
        assert not [text for text in logged if secret in text], secret
        assert secret not in out and secret not in err, secret
    # no header value ("bearer token" and "Bearer <token>" are words of messages)
    assert not any(re.search(r"bearer\s+(?!token\b|<token>)\S", text, re.I) for text in logged)


def test_audit_values_are_quoted_and_cut(caplog):
    caplog.set_level(logging.INFO, logger=AUDIT_LOGGER)
    record("deleted", route="DELETE /v1/sessions/a\nb", client=None, tenant="team a", target="x" * 500)
    (line,) = _audit_lines(caplog)
    assert "\n" not in line and 'route="DELETE /v1/sessions/a\\nb"' in line
    assert "client=- " in line and 'tenant="team a"' in line and "x" * 201 not in line


def test_only_refusals_are_recorded_with_the_tenant_the_refusal_names(caplog):
    caplog.set_level(logging.INFO, logger=AUDIT_LOGGER)
    denied = PermissionDenied("this token has no 'admin' scope")
    denied.tenant = "team-a"
    record_refusal(denied, route="DELETE /v1/sessions/s", client="10.0.0.7")
    record_refusal(Throttled("spans_per_second quota used up", 1.0), route="POST /v1/traces", client="10.0.0.8",
                   tenant="team-b")
    record_refusal(NotFound("no session 's'"), route="GET /v1/sessions/s", client="10.0.0.9")
    first, second = _audit_lines(caplog)
    assert "status=403" in first and "tenant=team-a" in first and "client=10.0.0.7" in first
    assert "status=429" in second and "tenant=team-b" in second


def test_a_refusal_repeated_is_one_line_per_interval(caplog, monkeypatch):
    caplog.set_level(logging.INFO, logger=AUDIT_LOGGER)
    now = [1000.0]
    monkeypatch.setattr(audit_log.time, "monotonic", lambda: now[0])
    throttled = Throttled("spans_per_second quota used up", 1.0)
    for _ in range(5):
        record_refusal(throttled, route="POST /v1/traces", client="10.0.0.8:5000", tenant="team-b")
    record_refusal(throttled, route="POST /v1/traces", client="10.0.0.9:5000", tenant="team-b")  # another client
    now[0] += audit_log.REPEAT_S + 1
    record_refusal(throttled, route="POST /v1/traces", client="10.0.0.8:6001", tenant="team-b")  # another port
    lines = _audit_lines(caplog)
    assert len(lines) == 3 and "repeated=" not in lines[0] and "client=10.0.0.9" in lines[1]
    assert "repeated=4" in lines[2]
    assert [audit_log._host(c) for c in ("10.0.0.5:51234", "[::1]:4000", "10.0.0.5", "::1", None)] == [
        "10.0.0.5", "[::1]", "10.0.0.5", "::1", None]


class _Context:
    def __init__(self, peer: str) -> None:
        self._peer = peer

    def peer(self) -> str:
        return self._peer


@pytest.mark.parametrize(("peer", "address"), [("ipv4:10.0.0.5:51234", "10.0.0.5:51234"),
                                                ("ipv6:%5B::1%5D:4000", "[::1]:4000"), ("", None)])
def test_grpc_peer_addresses(peer, address):
    assert grpc_peer(_Context(peer)) == address
