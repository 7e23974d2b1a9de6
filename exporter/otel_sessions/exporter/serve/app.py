"""The HTTP port's application: OTLP/HTTP ingest (traces and logs), health, readiness, metrics, and the routes
other packages add (REST lookups, the web page, the Jaeger-compatible API).

Unknown paths and wrong methods answer with a JSON message (404 / 405), not an HTML page.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable

from aiohttp import web

from otel_sessions.exporter.auth import Access
from otel_sessions.exporter.errors import http_error
from otel_sessions.exporter.ingest.inflight import InflightBytes
from otel_sessions.exporter.ingest.otlp_grpc import Resolve
from otel_sessions.exporter.ingest.otlp_http import logs_route, traces_route
from otel_sessions.exporter.metrics import render
from otel_sessions.exporter.store.gateway import RedisGateway

__all__ = ["create_app"]

log = logging.getLogger(__name__)


def _readyz(gateway: RedisGateway, probe_key: str) -> Callable:
    async def readyz(_request: web.Request) -> web.Response:
        """200 while Redis takes writes; 503 while it refuses them (an error reply: out of
        memory, read-only, loading, failed save...) or does not answer (down, timing out).
        ``condition`` names the reply's code (``OOM``, ``READONLY``, ``MISCONF``...) or the
        client-side condition (``timeout``, ``connection``)."""
        refusal = await gateway.write_refusal(probe_key)
        if refusal is None:
            return web.json_response({"status": "ready", "redis": "ok"})
        state = "refusing writes" if refusal.isupper() else "unreachable"
        return web.json_response({"status": "not ready", "redis": state, "condition": refusal}, status=503)

    return readyz


async def healthz(_request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


def _metrics(access: Access, public: bool, sample: Callable[[], Awaitable[None]] | None) -> Callable:
    async def metrics(request: web.Request) -> web.Response:
        """Prometheus text; needs a token with the ``metrics`` scope unless ``public``. The
        per-tenant usage gauges are sampled from Redis first (``sample``; a failure leaves
        them as they were)."""
        if not public:
            try:
                access.require(request.headers.get("Authorization"), "metrics")
            except Exception as exc:
                return http_error(exc, "GET /metrics")
        if sample is not None:
            try:
                await sample()
            except Exception as exc:  # Redis down: the process's own figures are still worth reading
                log.warning("per-tenant usage not sampled: %s", exc)
        return web.Response(body=render(), headers={"Content-Type": "text/plain; version=0.0.4; charset=utf-8"})

    return metrics


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


def create_app(*, ingestor_for: Resolve, log_ingest_for: Resolve, gateway: RedisGateway, ready_probe_key: str,
               access: Access, max_request_bytes: int, inflight: InflightBytes, body_timeout_s: float,
               extra_routes: Iterable[Callable[[web.Application], None]] = (), metrics_public: bool = False,
               sample_metrics: Callable[[], Awaitable[None]] | None = None) -> web.Application:
    """The aiohttp application of the HTTP port (OTLP bodies: ``max_request_bytes`` each,
    received within ``body_timeout_s``, all of them together within ``inflight``), each OTLP
    request stored through the ingestor of its caller's tenant (``ingestor_for``,
    ``log_ingest_for``). ``/healthz`` and ``/readyz`` need no token; ``/metrics`` needs the
    ``metrics`` scope unless ``metrics_public``."""
    app = web.Application(client_max_size=max_request_bytes, middlewares=[json_errors])
    app.router.add_post("/v1/traces", traces_route(ingestor_for, max_bytes=max_request_bytes, inflight=inflight,
                                                   body_timeout_s=body_timeout_s))
    app.router.add_post("/v1/logs", logs_route(log_ingest_for, max_bytes=max_request_bytes, inflight=inflight,
                                               body_timeout_s=body_timeout_s))
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", _readyz(gateway, ready_probe_key))
    app.router.add_get("/metrics", _metrics(access, metrics_public, sample_metrics))
    for add_routes in extra_routes:
        add_routes(app)
    return app
