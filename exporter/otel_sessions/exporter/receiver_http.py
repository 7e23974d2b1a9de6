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

import grpc
from aiohttp import web
from google.protobuf.message import DecodeError, Message
from google.rpc import status_pb2
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from .auth import BearerGuard
from .errors import BadRequest, TooLarge, UnsupportedMedia, classify, http_error
from .ingest import Ingestor
from .metrics import METRICS, render
from .otlp_json import OtlpJsonError, message_to_json, parse_traces_json

__all__ = ["create_app", "INGESTOR"]

PROTOBUF = "application/x-protobuf"
JSON = "application/json"
INGESTOR: web.AppKey[Ingestor] = web.AppKey("ingestor", Ingestor)


def _encode(message: Message, content_type: str) -> bytes:
    return message_to_json(message) if content_type == JSON else message.SerializeToString()


def _status_response(http_status: int, code: int, message: str, content_type: str) -> web.Response:
    status = status_pb2.Status(code=code, message=message)
    return web.Response(status=http_status, body=_encode(status, content_type), content_type=content_type)


def _gunzip(body: bytes, limit: int) -> bytes:
    """Decompress a gzip body, refusing to produce more than ``limit`` bytes (gzip bombs)."""
    decompressor = zlib.decompressobj(16 + zlib.MAX_WBITS)
    out = decompressor.decompress(body, limit + 1)
    if len(out) > limit or decompressor.unconsumed_tail:
        raise OverflowError
    if not decompressor.eof:
        raise zlib.error("truncated gzip stream")
    return out


def _otlp_error_render(content_type: str):
    """Error bodies of the OTLP/HTTP route: a ``google.rpc.Status`` in the reply's content type."""

    def render(http_status: int, code: grpc.StatusCode, message: str, _exc: BaseException) -> web.Response:
        return _status_response(http_status, code.value[0], message, content_type)

    return render


async def _read_body(request: web.Request, max_bytes: int) -> bytes:
    if request.content_length is not None and request.content_length > max_bytes:
        raise TooLarge(f"request body over the {max_bytes} byte limit")
    try:
        return await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise TooLarge(f"request body over the {max_bytes} byte limit") from None


def _decode(body: bytes, encoding: str, max_bytes: int) -> bytes:
    if encoding != "gzip":
        return body
    try:
        return _gunzip(body, max_bytes)
    except OverflowError:
        raise TooLarge(f"decompressed body over the {max_bytes} byte limit") from None
    except zlib.error as exc:
        raise BadRequest(f"invalid gzip body: {exc}") from None


def traces_route(max_bytes: int, guard: BearerGuard) -> Callable:
    async def post_traces(request: web.Request) -> web.StreamResponse:
        started = time.perf_counter()
        outcome = "ok"
        media = request.content_type  # without parameters such as charset
        reply_type = JSON if media == JSON else PROTOBUF
        try:
            guard.check(request.headers.get("Authorization"))
            if media not in (PROTOBUF, JSON):
                raise UnsupportedMedia(f"unsupported content type {media!r}: use {PROTOBUF} or {JSON}")
            encoding = request.headers.get("Content-Encoding", "identity").strip().lower()
            if encoding not in ("identity", "gzip", ""):
                raise UnsupportedMedia(f"unsupported content encoding {encoding!r}: use gzip or none")
            body = _decode(await _read_body(request, max_bytes), encoding, max_bytes)
            try:
                if media == JSON:
                    export_request = parse_traces_json(body, ExportTraceServiceRequest())
                    body = None  # the hooks get the protobuf encoding, made only if one needs it
                else:
                    export_request = ExportTraceServiceRequest.FromString(body)
            except (DecodeError, OtlpJsonError) as exc:
                raise BadRequest(f"cannot parse ExportTraceServiceRequest: {exc}") from None
            response = await request.app[INGESTOR].export(export_request, body)
            return web.Response(body=_encode(response, reply_type), content_type=reply_type)
        except Exception as exc:
            outcome = classify(exc).outcome
            return http_error(exc, "OTLP/HTTP export", _otlp_error_render(reply_type))
        finally:
            METRICS.requests.labels("http", outcome).inc()
            METRICS.request_seconds.labels("http").observe(time.perf_counter() - started)

    return post_traces


async def healthz(_request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    """200 while Redis takes writes; 503 while it is unreachable or refuses them (out of
    memory, read-only, loading)."""
    store = request.app[INGESTOR].store
    if await store.writable():
        return web.json_response({"status": "ready", "redis": "ok"})
    state = "refusing writes" if await store.ping() else "unreachable"
    return web.json_response({"status": "not ready", "redis": state}, status=503)


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


def create_app(ingestor: Ingestor, *, max_request_bytes: int, ingest_guard: BearerGuard,
               extra_routes: Iterable[Callable[[web.Application], None]] = ()) -> web.Application:
    """The aiohttp application of the HTTP port."""
    app = web.Application(client_max_size=max_request_bytes, middlewares=[json_errors])
    app[INGESTOR] = ingestor
    app.router.add_post("/v1/traces", traces_route(max_request_bytes, ingest_guard))
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)
    for add_routes in extra_routes:
        add_routes(app)
    return app
