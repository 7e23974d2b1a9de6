"""The HTTP port: OTLP/HTTP ``POST /v1/traces``, health, readiness and metrics.

OTLP/HTTP rules (opentelemetry-specification, protocol/otlp.md):

* ``application/x-protobuf`` and ``application/json`` bodies, optionally ``gzip``;
  responses use the request's content type;
* 400 with a ``google.rpc.Status`` body for data that does not parse (not retryable),
  413 above the size limit (compressed or decompressed), 415 for other content types or
  encodings, 405 for other methods, 401 without the ingest token;
* 503 with ``Retry-After`` when Redis fails (the exporter retries);
* success may carry ``partial_success`` with ``rejected_spans`` and a message.

Other modules add their routes to the same application (:func:`create_app` ``extra_routes``).
"""

from __future__ import annotations

import time
import zlib
from collections.abc import Callable, Iterable

from aiohttp import web
from google.protobuf.message import DecodeError, Message
from google.rpc import code_pb2, status_pb2
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from .auth import bearer_ok
from .ingest import Ingestor
from .metrics import METRICS, render
from .otlp_json import OtlpJsonError, message_to_json, parse_traces_json
from .store import StoreUnavailable

__all__ = ["create_app", "INGESTOR"]

PROTOBUF = "application/x-protobuf"
JSON = "application/json"
INGESTOR: web.AppKey[Ingestor] = web.AppKey("ingestor", Ingestor)
RETRY_AFTER_SECONDS = "2"


def _encode(message: Message, content_type: str) -> bytes:
    return message_to_json(message) if content_type == JSON else message.SerializeToString()


def _status_response(http_status: int, code: int, message: str, content_type: str,
                     headers: dict[str, str] | None = None) -> web.Response:
    status = status_pb2.Status(code=code, message=message)
    return web.Response(status=http_status, body=_encode(status, content_type), content_type=content_type,
                        headers=headers)


def _gunzip(body: bytes, limit: int) -> bytes:
    """Decompress a gzip body, refusing to produce more than ``limit`` bytes (gzip bombs)."""
    decompressor = zlib.decompressobj(16 + zlib.MAX_WBITS)
    out = decompressor.decompress(body, limit + 1)
    if len(out) > limit or decompressor.unconsumed_tail:
        raise OverflowError
    if not decompressor.eof:
        raise zlib.error("truncated gzip stream")
    return out


def traces_route(max_bytes: int, token: str | None) -> Callable:
    async def post_traces(request: web.Request) -> web.StreamResponse:
        started = time.perf_counter()
        outcome = "ok"
        media = request.content_type  # without parameters such as charset
        reply_type = JSON if media == JSON else PROTOBUF
        try:
            if token is not None and not bearer_ok(request.headers.get("Authorization"), token):
                outcome = "unauthenticated"
                return _status_response(401, code_pb2.UNAUTHENTICATED, "missing or wrong bearer token", reply_type,
                                        {"WWW-Authenticate": "Bearer"})
            if media not in (PROTOBUF, JSON):
                outcome = "unsupported"
                return _status_response(
                    415, code_pb2.INVALID_ARGUMENT,
                    f"unsupported content type {media!r}: use {PROTOBUF} or {JSON}", reply_type)
            encoding = request.headers.get("Content-Encoding", "identity").strip().lower()
            if encoding not in ("identity", "gzip", ""):
                outcome = "unsupported"
                return _status_response(415, code_pb2.INVALID_ARGUMENT,
                                        f"unsupported content encoding {encoding!r}: use gzip or none", reply_type)
            if request.content_length is not None and request.content_length > max_bytes:
                outcome = "too_large"
                return _status_response(413, code_pb2.RESOURCE_EXHAUSTED,
                                        f"request body over the {max_bytes} byte limit", reply_type)
            try:
                body = await request.read()
            except web.HTTPRequestEntityTooLarge:
                outcome = "too_large"
                return _status_response(413, code_pb2.RESOURCE_EXHAUSTED,
                                        f"request body over the {max_bytes} byte limit", reply_type)
            if encoding == "gzip":
                try:
                    body = _gunzip(body, max_bytes)
                except OverflowError:
                    outcome = "too_large"
                    return _status_response(413, code_pb2.RESOURCE_EXHAUSTED,
                                            f"decompressed body over the {max_bytes} byte limit", reply_type)
                except zlib.error as exc:
                    outcome = "invalid"
                    return _status_response(400, code_pb2.INVALID_ARGUMENT, f"invalid gzip body: {exc}", reply_type)
            try:
                if media == JSON:
                    export_request = parse_traces_json(body, ExportTraceServiceRequest())
                else:
                    export_request = ExportTraceServiceRequest.FromString(body)
            except (DecodeError, OtlpJsonError) as exc:
                outcome = "invalid"
                return _status_response(400, code_pb2.INVALID_ARGUMENT,
                                        f"cannot parse ExportTraceServiceRequest: {exc}", reply_type)
            try:
                response = await request.app[INGESTOR].export(export_request)
            except StoreUnavailable as exc:
                outcome = "unavailable"
                return _status_response(503, code_pb2.UNAVAILABLE,
                                        f"session store unavailable, retry later ({exc})", reply_type,
                                        {"Retry-After": RETRY_AFTER_SECONDS})
            return web.Response(body=_encode(response, reply_type), content_type=reply_type)
        finally:
            METRICS.requests.labels("http", outcome).inc()
            METRICS.request_seconds.labels("http").observe(time.perf_counter() - started)

    return post_traces


async def healthz(_request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    store = request.app[INGESTOR].store
    if await store.ping():
        return web.json_response({"status": "ready", "redis": "ok"})
    return web.json_response({"status": "not ready", "redis": "unreachable"}, status=503)


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


def create_app(ingestor: Ingestor, *, max_request_bytes: int, ingest_token: str | None = None,
               extra_routes: Iterable[Callable[[web.Application], None]] = ()) -> web.Application:
    """The aiohttp application of the HTTP port."""
    app = web.Application(client_max_size=max_request_bytes, middlewares=[json_errors])
    app[INGESTOR] = ingestor
    app.router.add_post("/v1/traces", traces_route(max_request_bytes, ingest_token))
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)
    for add_routes in extra_routes:
        add_routes(app)
    return app
