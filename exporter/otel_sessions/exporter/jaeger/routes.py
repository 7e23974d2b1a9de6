"""Jaeger-compatible query API under ``/api`` (what Grafana's Jaeger data source and Jaeger UI call).

Routes (all ``GET``, answers in Jaeger's JSON shape ``{"data", "total", "limit", "offset", "errors"}``):

* ``/api/services`` — service names seen within the retention, plus
  :data:`~otel_sessions.exporter.jaeger.translate.SESSION_SERVICE`;
* ``/api/services/{service}/operations`` — operation (span) names of a service;
* ``/api/operations?service=&spanKind=`` — ``[{"name", "spanKind"}]``;
* ``/api/traces?service=&operation=&tags=&tag=&start=&end=&lookback=&limit=&minDuration=&maxDuration=&traceID=``
  — search; ``tags`` is a JSON object (repeatable), ``tag`` is ``key:value`` (repeatable),
  ``start``/``end`` are µs since the epoch, durations are Go durations (``1.2s``, ``100ms``)
  (parsed in ``params.py``, searched in ``search.py``);
* ``/api/traces/{traceID}`` — one trace; 404 ``{"errors": [{"code": 404, "msg": "trace not found"}]}``;
* ``/api/sessions/{session_id}/trace`` — the session as one synthetic trace (``translate.py``);
* ``/api/dependencies`` — empty (no dependency graph is kept).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from otel_sessions.exporter import audit_log
from otel_sessions.exporter.auth import Access
from otel_sessions.exporter.errors import http_error
from otel_sessions.exporter.jaeger.params import BadQuery, TraceQuery, parse_trace_id
from otel_sessions.exporter.jaeger.search import JaegerQuery

__all__ = ["jaeger_routes"]


def _response(data: Any, status: int = 200, errors: list | None = None, total: int | None = None) -> web.Response:
    if total is None:
        total = len(data) if isinstance(data, list) else 0
    body = {"data": data, "total": total, "limit": 0, "offset": 0, "errors": errors}
    return web.json_response(body, status=status)


def _error(status: int, message: str, trace_id: str | None = None) -> web.Response:
    error: dict[str, Any] = {"code": status, "msg": message}
    if trace_id:
        error["traceID"] = trace_id
    return _response(None, status=status, errors=[error])


def jaeger_routes(access: Access, query_for: Callable[[str], Awaitable[JaegerQuery]]) -> Callable[[web.Application], None]:
    """Add the ``/api`` routes to the HTTP application (``extra_routes`` of ``create_app``).
    Every route needs the ``read`` scope and reads the caller's tenant only: ``query_for(tenant)``
    gives the reader of that tenant's namespace. Errors come from the error table, in Jaeger's
    error shape."""

    def render(status: int, _code, message: str, _exc: BaseException) -> web.Response:
        return _error(status, message)

    def guarded(handler):
        async def wrapper(request: web.Request) -> web.StreamResponse:
            try:
                principal = access.require(request.headers.get("Authorization"), "read")
                return await handler(request, await query_for(principal.tenant))
            except Exception as exc:
                audit_log.record_refusal(exc, route=f"GET {request.path}", client=request.remote)
                return http_error(exc, f"GET {request.path}", render)

        return wrapper

    async def services(_request: web.Request, query: JaegerQuery) -> web.Response:
        return _response(await query.services())

    async def service_operations(request: web.Request, query: JaegerQuery) -> web.Response:
        operations = await query.operations(request.match_info["service"])
        return _response(sorted({op["name"] for op in operations}))

    async def operations(request: web.Request, query: JaegerQuery) -> web.Response:
        service = request.query.get("service")
        if not service:
            raise BadQuery("parameter 'service' is required")
        return _response(await query.operations(service, request.query.get("spanKind") or None))

    async def traces(request: web.Request, query: JaegerQuery) -> web.Response:
        q = TraceQuery.parse(request.query)
        found = await query.find_traces(q)
        errors = None
        if q.trace_ids and len(found) < len(q.trace_ids):
            have = {t["traceID"] for t in found}
            errors = [{"msg": "trace not found", "traceID": t.hex()} for t in q.trace_ids if t.hex() not in have]
        return _response(found, errors=errors)

    async def trace(request: web.Request, query: JaegerQuery) -> web.Response:
        trace_id = parse_trace_id(request.match_info["trace_id"])
        found = await query.trace(trace_id)
        if found is None:
            return _error(404, "trace not found")
        return _response([found])

    async def session(request: web.Request, query: JaegerQuery) -> web.Response:
        found = await query.session_trace(request.match_info["session_id"])
        if found is None:
            return _error(404, "session not found")
        return _response([found])

    async def dependencies(_request: web.Request, _query: JaegerQuery) -> web.Response:
        return _response([])

    def add(app: web.Application) -> None:
        app.router.add_get("/api/services", guarded(services))
        app.router.add_get("/api/services/{service}/operations", guarded(service_operations))
        app.router.add_get("/api/operations", guarded(operations))
        app.router.add_get("/api/traces", guarded(traces))
        app.router.add_get("/api/traces/{trace_id}", guarded(trace))
        app.router.add_get("/api/sessions/{session_id}/trace", guarded(session))
        app.router.add_get("/api/dependencies", guarded(dependencies))

    return add
