"""The HTTP port's application: OTLP/HTTP ingest (traces and logs), health, readiness, metrics, and the routes
other packages add (REST lookups, the web page, the Jaeger-compatible API).

Unknown paths and wrong methods answer with a JSON message (404 / 405), not an HTML page.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from aiohttp import web

from otel_sessions.exporter.auth import BearerGuard
from otel_sessions.exporter.ingest.inflight import InflightBytes
from otel_sessions.exporter.ingest.ingestor import Ingestor
from otel_sessions.exporter.ingest.log_ingest import LogIngest
from otel_sessions.exporter.ingest.otlp_http import logs_route, traces_route
from otel_sessions.exporter.metrics import render
from otel_sessions.exporter.store.sessions import SessionStore

__all__ = ["create_app"]


def _readyz(store: SessionStore) -> Callable:
    async def readyz(_request: web.Request) -> web.Response:
        """200 while Redis takes writes; 503 while it refuses them (an error reply: out of
        memory, read-only, loading, failed save...) or does not answer (down, timing out).
        ``condition`` names the reply's code (``OOM``, ``READONLY``, ``MISCONF``...) or the
        client-side condition (``timeout``, ``connection``)."""
        refusal = await store.gateway.write_refusal(store.keys.ready_probe())
        if refusal is None:
            return web.json_response({"status": "ready", "redis": "ok"})
        state = "refusing writes" if refusal.isupper() else "unreachable"
        return web.json_response({"status": "not ready", "redis": state, "condition": refusal}, status=503)

    return readyz


async def healthz(_request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def metrics(_request: web.Request) -> web.Response:
    return web.Response(body=render(), headers={"Content-Type": "text/plain; version=0.0.4; charset=utf-8"})


@web.middleware
async def json_errors(request: web.Request, handler) -> web.StreamResponse:
    """Unknown paths and wrong methods answer with a JSON message, not an HTML page."""
    try:
        return await handler(request)
    except web.HTTPMethodNotAllowed as exc:
        return web.json_response({"error": f"method {request.method} not allowed on {request.path}",
                                  "allowed": sorted(exc.allowed_methods)}, status=405,
                                 headers={"Allow": ",".join(sorted(exc.allowed_methods))})
    except web.HTTPNotFound:
        return web.json_response({"error": f"no such path: {request.path}"}, status=404)


def create_app(ingestor: Ingestor, *, max_request_bytes: int, ingest_guard: BearerGuard, inflight: InflightBytes,
               body_timeout_s: float,
               extra_routes: Iterable[Callable[[web.Application], None]] = (),
               log_ingest: LogIngest | None = None) -> web.Application:
    """The aiohttp application of the HTTP port (OTLP bodies: ``max_request_bytes`` each,
    received within ``body_timeout_s``, all of them together within ``inflight``)."""
    app = web.Application(client_max_size=max_request_bytes, middlewares=[json_errors])
    app.router.add_post("/v1/traces", traces_route(ingestor, max_bytes=max_request_bytes, guard=ingest_guard,
                                                   inflight=inflight, body_timeout_s=body_timeout_s))
    app.router.add_post("/v1/logs", logs_route(log_ingest or LogIngest(ingestor), max_bytes=max_request_bytes,
                                               guard=ingest_guard, inflight=inflight, body_timeout_s=body_timeout_s))
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", _readyz(ingestor.store))
    app.router.add_get("/metrics", metrics)
    for add_routes in extra_routes:
        add_routes(app)
    return app
