"""Session lookups on the HTTP port: the REST API and its OpenAPI description.

Routes (``docs/interface.md``): ``GET /v1/sessions``, ``GET|DELETE /v1/sessions/{id}``,
``GET /v1/sessions/{id}/spans``, ``GET /v1/sessions/{id}/spans/{span_id}``,
``GET /v1/sessions/{id}/messages``, ``GET /v1/sessions/{id}/logs`` and ``GET /v1/threads/{id}/logs``
(``rest_logs.py``), ``GET /v1/sessions/{id}/tail`` (server-sent events), ``GET /v1/threads/{id}``,
``GET /v1/threads/{id}/messages``, ``GET /v1/users/{id}/sessions``, ``GET /v1/traces/{trace_id}``,
``GET /openapi.json``. The web page and the lookup only it needs are in ``page.py``.

Answers are strict JSON (no bare ``NaN`` / ``Infinity``: a figure that is not finite is
null). Every error is JSON: ``{"error": message}``, plus ``"parameter"`` naming the bad parameter
(400). Statuses come from the error table (``errors.py``): unknown ids are 404, Redis
failures 503 with ``Retry-After``, a bug 500. Once any token is configured (``auth.py``), every
route needs ``Authorization: Bearer <token>`` of a token with the ``read`` scope (``DELETE``:
``admin``): 401 without a known token, 403 without the scope; a request sees only its token's
tenant, so another tenant's ids are 404 like unknown ones. The OpenAPI document (and the web
page's files, ``page.py``) hold no data and need no token.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable

from aiohttp import web
from opentelemetry.proto.logs.v1.logs_pb2 import LogsData

from otel_sessions.exporter import audit_log
from otel_sessions.exporter.auth import Access
from otel_sessions.exporter.errors import NotFound, StoreUnavailable, http_error
from otel_sessions.exporter.lookup.conversation import page_params
from otel_sessions.exporter.lookup.params import LIST_PARAMS, MAX_LIMIT, QueryError, SessionQuery, parse_count
from otel_sessions.exporter.lookup.tail import SessionTail
from otel_sessions.exporter.otlp_json import message_to_json
from otel_sessions.exporter.serve import rest_logs
from otel_sessions.exporter.serve.tenancy import Tenancy, TenantServices

__all__ = ["lookup_routes", "TENANT"]

#: The caller's tenant's components (``tenancy.TenantServices``), set on each request by the guard.
TENANT: web.RequestKey[TenantServices] = web.RequestKey("tenant", TenantServices)
#: The transports of the open tails: their connections are closed when the service stops, so
#: clients learn it at once and shutdown does not wait for them.
TAILS: web.AppKey[set] = web.AppKey("tails", set)
_THREAD_PARAMS = ("limit", "offset")
_USER_PARAMS = tuple(p for p in LIST_PARAMS if p != "user_id")  # the user is in the path


def _finite(value):
    """``value`` with every float that is not finite replaced by None."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_finite(item) for item in value]
    return value


def _dumps(value) -> str:
    """Strict JSON, as browsers' ``JSON.parse`` takes it: a figure that is not finite (which
    the store should never hold) is written as null, never as a bare ``NaN`` / ``Infinity``."""
    try:
        return json.dumps(value, allow_nan=False)
    except ValueError:
        return json.dumps(_finite(value), allow_nan=False)


def _json(value, status: int = 200) -> web.Response:
    return web.json_response(value, status=status, dumps=_dumps)


def _guard(access: Access, tenancy: Tenancy, scope: str, handler: Callable) -> Callable:
    """The token check (a token of ``scope``: its tenant's components become ``request[TENANT]``),
    and every error answered from the error table as JSON ``{"error", "parameter"}``."""

    async def guarded(request: web.Request) -> web.StreamResponse:
        route = f"{request.method} {request.path}"
        try:
            principal = access.require(request.headers.get("Authorization"), scope)
            request[TENANT] = await tenancy.get(principal.tenant)
            return await handler(request)
        except Exception as exc:
            audit_log.record_refusal(exc, route=route, client=request.remote)
            return http_error(exc, route)

    return guarded


async def list_sessions(request: web.Request) -> web.Response:
    query = SessionQuery.from_params(request.query)
    result = await request[TENANT].queries.list_sessions(query)
    return _json(result.to_json())


async def get_session(request: web.Request) -> web.Response:
    session_id = request.match_info["session_id"]
    summary = await request[TENANT].store.get_session(session_id, with_traces=True)
    if summary is None:
        raise NotFound(f"no session {session_id!r}")
    await request[TENANT].queries.figures.fill([summary])
    return _json(summary.to_json())


async def get_spans(request: web.Request) -> web.Response:
    session_id = request.match_info["session_id"]
    fmt = request.query.get("format", "otlp-json")
    if fmt not in ("otlp-json", "otlp-proto"):
        raise QueryError("format", f"{fmt[:32]!r} is not otlp-json or otlp-proto")
    data = await request[TENANT].store.get_spans(session_id)
    if data is None:
        raise NotFound(f"no session {session_id!r}")
    if fmt == "otlp-proto":
        return web.Response(body=data.SerializeToString(), content_type="application/x-protobuf")
    return web.Response(body=message_to_json(data), content_type="application/json")


async def get_span(request: web.Request) -> web.Response:
    for key in request.query:
        if key != "trace_id":
            raise QueryError(key, "unknown parameter")
    details = await request[TENANT].conversations.span(request.match_info["session_id"], request.match_info["span_id"],
                                                    request.query.get("trace_id") or None)
    return _json(details)


async def session_messages(request: web.Request) -> web.Response:
    session_id = request.match_info["session_id"]
    limit, offset = page_params(request.query)
    transcript = await request[TENANT].conversations.session_messages(session_id, limit, offset)
    return _json({"session_id": session_id, **transcript.to_json()})


async def thread_messages(request: web.Request) -> web.Response:
    thread_id = request.match_info["thread_id"]
    limit, offset = page_params(request.query)
    transcript = await request[TENANT].conversations.thread_messages(thread_id, limit, offset)
    return _json({"thread_id": thread_id, **transcript.to_json()})


async def delete_session(request: web.Request) -> web.Response:
    session_id = request.match_info["session_id"]
    tenant = request[TENANT]
    if not await tenant.store.delete_session(session_id):
        raise NotFound(f"no session {session_id!r}")
    audit_log.record("deleted", route=f"DELETE {request.path}", client=request.remote, tenant=tenant.name, status=204,
                     target=session_id)
    return web.Response(status=204)


async def tail(request: web.Request) -> web.StreamResponse:
    """Server-sent events: one ``data:`` event (OTLP/JSON ``TracesData``) per write of spans,
    one ``event: logs`` event (OTLP/JSON ``LogsData``) per write of log records."""
    session_id = request.match_info["session_id"]
    store = request[TENANT].store
    if await store.get_session(session_id) is None:
        raise NotFound(f"no session {session_id!r}")
    following = await SessionTail(store, session_id, idle_s=5.0, logs=True).start()
    transport = request.transport
    request.app[TAILS].add(transport)
    try:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
        await response.prepare(request)
        # the first line tells the client the tail is live: spans stored from now on will come
        await response.write(b": tailing " + session_id.encode() + b"\n\n")
        async for data in following:
            if request.transport is None or request.transport.is_closing():
                break  # the client went away
            if data is None:
                await response.write(b": keep-alive\n\n")
            elif isinstance(data, LogsData):  # a named event: EventSource's onmessage sees spans only
                await response.write(b"event: logs\ndata: " + message_to_json(data) + b"\n\n")
            else:
                await response.write(b"data: " + message_to_json(data) + b"\n\n")
    except (ConnectionResetError, StoreUnavailable):
        pass
    finally:
        request.app[TAILS].discard(transport)
        await following.close()
    return response


async def _end_tails(app: web.Application) -> None:
    """``on_shutdown``: close the connections of open tails (their handlers end with the next
    keep-alive, within 5 s)."""
    for transport in list(app[TAILS]):
        if transport is not None:
            transport.close()


async def get_thread(request: web.Request) -> web.Response:
    thread_id = request.match_info["thread_id"]
    for key in request.query:
        if key not in _THREAD_PARAMS:
            raise QueryError(key, "unknown parameter")
    limit = parse_count("limit", request.query.get("limit"), MAX_LIMIT, MAX_LIMIT)
    offset = parse_count("offset", request.query.get("offset"), 0, None)
    result = await request[TENANT].queries.thread(thread_id, limit=limit, offset=offset, conversation=True)
    if result is None:
        raise NotFound(f"no thread {thread_id!r}")
    return _json({"id": thread_id, **result.to_json()})


async def user_sessions(request: web.Request) -> web.Response:
    user_id = request.match_info["user_id"]
    query = SessionQuery.from_params(request.query, allow=_USER_PARAMS)
    result = await request[TENANT].queries.user_sessions(user_id, query)
    if result is None:
        raise NotFound(f"no user {user_id!r}")
    return _json({"id": user_id, **result.to_json()})


async def get_trace(request: web.Request) -> web.Response:
    """``{"trace_id", "session_id", "span_count"}`` of a stored trace: the session its spans
    joined (``null`` while none of them named one; the spans are then kept by trace id) and how
    many of its spans are stored."""
    raw = request.match_info["trace_id"].strip().lower()
    if len(raw) != 32 or any(c not in "0123456789abcdef" for c in raw) or raw == "0" * 32:
        raise QueryError("trace_id", "use 32 hex digits, not all zero")
    trace_id = bytes.fromhex(raw)
    store = request[TENANT].store
    session_id = await store.get_trace_session(trace_id)
    span_count = 0
    if session_id is not None:
        summary = await store.get_session(session_id, with_traces=True)
        span_count = next((t.span_count for t in (summary.traces if summary else []) if t.trace_id == raw), 0)
    if not span_count:
        session_id = None
        span_count = sum(len(ss.spans) for rs in (await store.get_parked_spans(trace_id)).resource_spans
                         for ss in rs.scope_spans)
    if not span_count:
        raise NotFound(f"no span of trace {raw} is stored")
    return web.json_response({"trace_id": raw, "session_id": session_id, "span_count": span_count})


async def openapi(_request: web.Request) -> web.Response:
    from otel_sessions.exporter.serve.openapi import OPENAPI

    return web.json_response(OPENAPI, dumps=lambda obj: json.dumps(obj, indent=1))


def lookup_routes(access: Access, tenancy: Tenancy) -> Callable[[web.Application], None]:
    """A route adder for :func:`otel_sessions.exporter.serve.app.create_app` (``extra_routes``):
    reads need the ``read`` scope, ``DELETE`` the ``admin`` scope; each request sees its
    token's tenant only (another tenant's ids are unknown: 404)."""

    def add(app: web.Application) -> None:
        app[TAILS] = set()
        app.on_shutdown.append(_end_tails)
        r = app.router

        def read(handler: Callable) -> Callable:
            return _guard(access, tenancy, "read", handler)

        r.add_get("/v1/sessions", read(list_sessions))
        r.add_get("/v1/sessions/{session_id}", read(get_session))
        r.add_delete("/v1/sessions/{session_id}", _guard(access, tenancy, "admin", delete_session))
        r.add_get("/v1/sessions/{session_id}/spans", read(get_spans))
        r.add_get("/v1/sessions/{session_id}/logs", read(rest_logs.session_logs))
        r.add_get("/v1/threads/{thread_id}/logs", read(rest_logs.thread_logs))
        r.add_get("/v1/sessions/{session_id}/spans/{span_id}", read(get_span))
        r.add_get("/v1/sessions/{session_id}/messages", read(session_messages))
        r.add_get("/v1/sessions/{session_id}/tail", read(tail))
        r.add_get("/v1/threads/{thread_id}", read(get_thread))
        r.add_get("/v1/threads/{thread_id}/messages", read(thread_messages))
        r.add_get("/v1/users/{user_id}/sessions", read(user_sessions))
        r.add_get("/v1/traces/{trace_id}", read(get_trace))
        r.add_get("/openapi.json", openapi)

    return add
