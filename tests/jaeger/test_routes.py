"""The ``/api`` routes' answers without a server or Redis: requests are mocked and the store
and index are fakes. Errors come from the error table in Jaeger's shape."""

from __future__ import annotations

import asyncio
import json

import pytest
from aiohttp import web
from aiohttp.test_utils import make_mocked_request

from otel_sessions.exporter.auth import Access
from otel_sessions.exporter.errors import StoreUnavailable
from otel_sessions.exporter.jaeger.routes import jaeger_routes
from otel_sessions.exporter.jaeger.search import JaegerQuery
from otel_sessions.exporter.tenants import single_token_tenant


class FakeIndex:
    """A service index with two services; ``fail`` is raised by every read when set."""

    retention_ms = 3_600_000

    def __init__(self, fail: BaseException | None = None) -> None:
        self.fail = fail

    async def services(self, since_ms: float) -> set[str]:
        if self.fail:
            raise self.fail
        return {"checkout", "billing"}

    async def operations(self, service: str, since_ms: float) -> list[tuple[str, str]]:
        if self.fail:
            raise self.fail
        return [("server", "POST /pay"), ("client", "charge"), ("", "charge")] if service == "checkout" else []


def call(path: str, index: FakeIndex | None = None, token: str | None = None,
         headers: dict | None = None) -> tuple[web.Response, dict]:
    async def run() -> web.Response:
        app = web.Application()
        tenant = single_token_tenant(None, token)

        async def query_for(_tenant: str) -> JaegerQuery:
            return JaegerQuery(object(), index or FakeIndex())

        jaeger_routes(Access([tenant] if tenant else []), query_for)(app)
        match = await app.router.resolve(make_mocked_request("GET", path, app=app))
        request = make_mocked_request("GET", path, headers=headers, app=app, match_info=dict(match))
        return await match.handler(request)

    response = asyncio.run(run())
    return response, json.loads(response.text)


def envelope(data, errors=None) -> dict:
    """Jaeger's ``structuredResponse`` as the routes write it."""
    total = len(data) if isinstance(data, list) else 0
    return {"data": data, "total": total, "limit": 0, "offset": 0, "errors": errors}


@pytest.mark.parametrize(("path", "message"), [
    ("/api/traces?limit=ten", "cannot parse 'limit' 'ten'"),
    ("/api/traces?minDuration=2s&maxDuration=1s", "'maxDuration' should be greater than 'minDuration'"),
    ("/api/traces?tags=%7Bbroken", "malformed 'tags' parameter, cannot unmarshal JSON"),
    ("/api/traces?tag=novalue", "malformed 'tag' parameter, expecting key:value, got 'novalue'"),
    ("/api/traces?operation=op", "parameter 'service' is required when 'operation' is given"),
    ("/api/traces?lookback=1d", "cannot parse duration '1d'"),
    ("/api/traces?traceID=zz", "cannot parse traceID 'zz'"),
    ("/api/traces/not-hex", "cannot parse traceID 'not-hex'"),
    ("/api/operations", "parameter 'service' is required"),
    ("/api/operations?service=", "parameter 'service' is required"),
])
def test_bad_parameters_are_400_in_jaeger_error_shape(path, message):
    response, body = call(path)
    assert response.status == 400
    assert body["data"] is None and body["total"] == 0
    assert len(body["errors"]) == 1 and body["errors"][0]["code"] == 400
    assert message in body["errors"][0]["msg"]
    assert "Retry-After" not in response.headers


def test_missing_token_is_401_in_jaeger_error_shape():
    response, body = call("/api/services", token="secret")
    assert response.status == 401
    assert response.headers["WWW-Authenticate"] == "Bearer"
    assert body["errors"][0]["code"] == 401 and "bearer token" in body["errors"][0]["msg"]
    ok, body = call("/api/services", token="secret", headers={"Authorization": "Bearer secret"})
    assert ok.status == 200 and body == envelope(["billing", "checkout", "otel-sessions"])


def test_store_unavailable_is_503_with_retry_after():
    response, body = call("/api/services", FakeIndex(StoreUnavailable("the store is unavailable, retry later")))
    assert response.status == 503 and response.headers["Retry-After"] == "2"
    assert body == envelope(None, [{"code": 503, "msg": "the store is unavailable, retry later"}])


def test_a_bug_is_500_without_details():
    response, body = call("/api/services", FakeIndex(RuntimeError("redis key P:{ix:1} broke")))
    assert response.status == 500
    assert body["errors"][0]["code"] == 500 and "P:{ix:1}" not in body["errors"][0]["msg"]


def test_operations_routes():
    _response, body = call("/api/services/checkout/operations")
    assert body == envelope(["POST /pay", "charge"])
    _response, body = call("/api/operations?service=checkout")
    assert body == envelope([{"name": "POST /pay", "spanKind": "server"}, {"name": "charge", "spanKind": ""},
                             {"name": "charge", "spanKind": "client"}])
    _response, body = call("/api/operations?service=checkout&spanKind=client")
    assert body == envelope([{"name": "charge", "spanKind": "client"}])
    _response, body = call("/api/services/otel-sessions/operations")
    assert body == envelope([])


def test_dependencies_are_empty():
    response, body = call("/api/dependencies")
    assert response.status == 200 and body == envelope([])
