"""The HTTP port's edges on a real service: the Host check (DNS rebinding) and CORS."""

from __future__ import annotations

import http.client
import json
from urllib.parse import urlsplit

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from otel_sessions.exporter.serve.host_check import host_allowed
from tests.support import RunningService


def request(service, method: str, path: str, headers: dict[str, str] | None = None,
            body: bytes | None = None) -> tuple[int, dict | bytes | None, http.client.HTTPMessage]:
    """One request on the service's HTTP port, headers sent as given (``Host`` too)."""
    parts = urlsplit(service.http_url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    try:
        names = {name.lower() for name in headers or {}}
        connection.putrequest(method, path, skip_host="host" in names, skip_accept_encoding=True)
        for name, value in (headers or {}).items():
            connection.putheader(name, value)
        if body is not None:
            connection.putheader("Content-Length", str(len(body)))
        connection.endheaders(body)
        response = connection.getresponse()
        data = response.read()
        if response.headers.get("Content-Type", "").startswith("application/json") and data:
            return response.status, json.loads(data), response.headers
        return response.status, data or None, response.headers
    finally:
        connection.close()


@pytest.mark.parametrize(("header", "allowed"), [
    ("localhost", True), ("localhost:4318", True), ("LOCALHOST.:4318", True), ("127.0.0.1", True),
    ("127.0.0.1:4318", True), ("127.8.9.10:80", True), ("[::1]", True), ("[::1]:4318", True),
    ("sessions.example.com", True), ("sessions.example.com:443", True), ("a.internal.example.com", True),
    ("internal.example.com", False), ("evil.example", False), ("localhost.evil.example", False),
    ("127.0.0.1.nip.io", False), ("[::2]:4318", False), ("0.0.0.0:4318", False), ("", False),
])
def test_host_names(header, allowed):
    assert host_allowed(header, ("sessions.example.com", "*.internal.example.com")) is allowed


def test_loopback_service_refuses_other_host_names(service):
    port = urlsplit(service.http_url).port
    for host in ("localhost", f"localhost:{port}", f"127.0.0.1:{port}", f"[::1]:{port}"):
        status, _, _ = request(service, "GET", "/v1/sessions", {"Host": host})
        assert status == 200, host
    status, body, _ = request(service, "GET", "/v1/sessions", {"Host": "rebind.attacker.example:4318"})
    assert status == 421
    assert "rebind.attacker.example" in body["error"] and "--allowed-hosts" in body["error"]
    assert "DNS rebinding" in body["error"]
    # OTLP ingest, the page, the Jaeger API and metrics are behind it too; health is not
    for method, path in (("POST", "/v1/traces"), ("GET", "/"), ("GET", "/api/services"), ("GET", "/metrics")):
        assert request(service, method, path, {"Host": "evil.example", "Content-Type": "application/json"},
                       b"{}" if method == "POST" else None)[0] == 421, path
    for path in ("/healthz", "/readyz"):
        assert request(service, "GET", path, {"Host": "evil.example"})[0] == 200


def test_allowed_hosts_extend_the_loopback_names(redis_url):
    with RunningService(redis_url, allowed_hosts="sessions.example.com,*.corp.example") as service:
        for host in ("sessions.example.com", "sessions.example.com:8080", "a.b.corp.example", "localhost"):
            assert request(service, "GET", "/v1/sessions", {"Host": host})[0] == 200, host
        for host in ("corp.example", "example.com", "evil.example"):
            assert request(service, "GET", "/v1/sessions", {"Host": host})[0] == 421, host


def test_beyond_loopback_the_check_needs_allowed_hosts(redis_url):
    # listening on every interface (reached here through 127.0.0.1): no check without --allowed-hosts
    with RunningService(redis_url, http_listen="0.0.0.0:0") as service:
        assert request(service, "GET", "/v1/sessions", {"Host": "10.1.2.3:4318"})[0] == 200
    with RunningService(redis_url, http_listen="0.0.0.0:0", allowed_hosts="sessions.example.com") as service:
        assert request(service, "GET", "/v1/sessions", {"Host": "sessions.example.com"})[0] == 200
        assert request(service, "GET", "/v1/sessions", {"Host": "127.0.0.1"})[0] == 200
        assert request(service, "GET", "/v1/sessions", {"Host": "10.1.2.3:4318"})[0] == 421


APP = "https://app.example.com"


def _preflight(service, path: str, origin: str, method: str = "POST"):
    return request(service, "OPTIONS", path, {"Origin": origin, "Access-Control-Request-Method": method,
                                              "Access-Control-Request-Headers": "authorization,content-type"})


def test_cors_is_off_by_default(service):
    status, _, headers = _preflight(service, "/v1/traces", APP)
    assert status == 405 and "Access-Control-Allow-Origin" not in headers
    status, _, headers = request(service, "GET", "/v1/sessions", {"Origin": APP})
    assert status == 200 and "Access-Control-Allow-Origin" not in headers


def test_cors_lets_listed_origins_send_otlp_and_read(redis_url):
    with RunningService(redis_url, cors_origins=f"{APP},http://localhost:3000", ingest_token="in-tok",
                        query_token="q-tok") as service:
        for path in ("/v1/traces", "/v1/logs"):
            status, _, headers = _preflight(service, path, APP)
            assert status == 204, path
            assert headers["Access-Control-Allow-Origin"] == APP
            assert "POST" in headers["Access-Control-Allow-Methods"]
            allowed = {h.strip().lower() for h in headers["Access-Control-Allow-Headers"].split(",")}
            assert {"authorization", "content-type"} <= allowed
            assert int(headers["Access-Control-Max-Age"]) > 0 and "Origin" in headers["Vary"]
        status, _, headers = _preflight(service, "/v1/sessions/s-1", "http://localhost:3000", "DELETE")
        assert status == 204 and "DELETE" in headers["Access-Control-Allow-Methods"]

        # the actual export from the browser page: stored, and readable by the page
        body = ExportTraceServiceRequest().SerializeToString()
        status, _, headers = request(service, "POST", "/v1/traces", {
            "Origin": APP, "Content-Type": "application/x-protobuf", "Authorization": "Bearer in-tok"}, body)
        assert status == 200 and headers["Access-Control-Allow-Origin"] == APP
        # errors too (so the page can read a 401 and its WWW-Authenticate, a 503's Retry-After)
        status, _, headers = request(service, "GET", "/v1/sessions", {"Origin": APP})
        assert status == 401 and headers["Access-Control-Allow-Origin"] == APP
        assert "WWW-Authenticate" in headers["Access-Control-Expose-Headers"]

        # another origin: its preflight is refused, its answers carry no CORS header
        status, body, headers = _preflight(service, "/v1/traces", "https://evil.example")
        assert status == 403 and "--cors-origins" in body["error"]
        assert "Access-Control-Allow-Origin" not in headers
        status, _, headers = request(service, "GET", "/v1/sessions",
                                     {"Origin": "https://evil.example", "Authorization": "Bearer q-tok"})
        assert status == 200 and "Access-Control-Allow-Origin" not in headers
        # a preflight on a path that does not exist is a 404
        assert _preflight(service, "/v1/nothing", APP)[0] == 404
