"""OTLP/HTTP ``POST /v1/traces`` and ``POST /v1/logs``: decode, parse, ingest, answer.

OTLP/HTTP rules (opentelemetry-specification, protocol/otlp.md):

* ``application/x-protobuf`` and ``application/json`` bodies, optionally compressed with
  ``gzip`` (every member), ``deflate`` (zlib or raw) or ``zstd`` (``content_encoding.py``);
  responses use the request's content type;
* 400 with a ``google.rpc.Status`` body for data that does not parse (not retryable),
  413 above the size limit (compressed or decompressed), 415 for other content types or
  encodings, 405 for other methods, 401 without a known token, 403 for a token without the
  ``ingest`` scope (each request is stored in the namespace of its token's tenant);
* 429 with ``Retry-After`` over the tenant's quota (``quota.py``; the request is refused whole);
* 503 with ``Retry-After`` when Redis fails or the process holds ``--max-inflight-bytes``
  already (the exporter retries): the body is held in a lease on the process's in-flight
  bytes (``inflight.py``), its ``Content-Length`` before a byte is read, the decoded size
  once decoded, until the answer;
* 408 when the body has not arrived within ``--body-timeout`` (a stalled or trickling
  client), and the connection is closed;
* success may carry ``partial_success`` with ``rejected_spans`` (``rejected_log_records``)
  and a message.

Statuses come from the error table (``errors.py``); error bodies are ``google.rpc.Status``
in the request's content type. A request in neither OTLP content type gets its error as JSON
unless its ``Accept`` asks for protobuf (a JSON or a plain HTTP client reads a 415 as text).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import grpc
from aiohttp import web
from google.protobuf.message import DecodeError, Message
from google.rpc import status_pb2
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from otel_sessions.exporter import audit_log
from otel_sessions.exporter.errors import (
    BadRequest,
    RequestTimeout,
    TooLarge,
    UnsupportedMedia,
    classify,
    http_error,
)
from otel_sessions.exporter.ingest.content_encoding import (
    SUPPORTED,
    DecodedTooLarge,
    EncodingError,
    UnsupportedEncoding,
    check_encoding,
    decode_body,
)
from otel_sessions.exporter.ingest.inflight import InflightBytes, Lease
from otel_sessions.exporter.ingest.otlp_grpc import Resolve
from otel_sessions.exporter.metrics import METRICS
from otel_sessions.exporter.otlp_json import OtlpJsonError, message_to_json, parse_otlp_json

__all__ = ["traces_route", "logs_route", "PROTOBUF", "JSON"]

PROTOBUF = "application/x-protobuf"
JSON = "application/json"


def _encode(message: Message, content_type: str) -> bytes:
    return message_to_json(message) if content_type == JSON else message.SerializeToString()


def _reply_type(media: str, accept: str) -> str:
    """The content type of the answer: the request's when it is an OTLP one; else JSON, unless
    ``Accept`` asks for protobuf."""
    if media in (PROTOBUF, JSON):
        return media
    return PROTOBUF if "protobuf" in accept.lower() else JSON


def _status_response(http_status: int, code: int, message: str, content_type: str) -> web.Response:
    status = status_pb2.Status(code=code, message=message)
    return web.Response(status=http_status, body=_encode(status, content_type), content_type=content_type)


def _otlp_error_render(content_type: str):
    """Error bodies of the OTLP/HTTP route: a ``google.rpc.Status`` in the reply's content type."""

    def render(http_status: int, code: grpc.StatusCode, message: str, _exc: BaseException) -> web.Response:
        return _status_response(http_status, code.value[0], message, content_type)

    return render


async def _read_body(request: web.Request, max_bytes: int, lease: Lease) -> bytes:
    """The body as sent, at most ``max_bytes``, held in ``lease``: its ``Content-Length`` is
    taken before a byte is read, a body without one grows the lease chunk by chunk."""
    declared = request.content_length
    if declared is not None and declared > max_bytes:
        raise TooLarge(f"request body over the {max_bytes} byte limit")
    lease.resize(declared or 0)
    body = bytearray()
    while chunk := await request.content.readany():
        body += chunk
        if len(body) > max_bytes:
            raise TooLarge(f"request body over the {max_bytes} byte limit")
        if len(body) > lease.size:
            lease.resize(len(body))
    return bytes(body)


async def _read_within(request: web.Request, max_bytes: int, lease: Lease, timeout_s: float) -> bytes:
    try:
        return await asyncio.wait_for(_read_body(request, max_bytes, lease), timeout_s)
    except asyncio.TimeoutError:
        raise RequestTimeout(f"request body not received within {timeout_s:g} s") from None


async def _answer_and_close(request: web.Request, response: web.Response) -> web.Response:
    """Send ``response``, then close the connection at once: the rest of a stalled body is not
    waited for (aiohttp would otherwise linger reading it)."""
    response.force_close()
    try:
        await response.prepare(request)
        await response.write_eof()
    except ConnectionError:
        pass  # the client is gone already
    request.protocol.force_close()  # the answer is flushed before the socket closes
    return response


def _decode(body: bytes, encoding: str | None, max_bytes: int) -> bytes:
    try:
        return decode_body(body, encoding, max_bytes)
    except DecodedTooLarge:
        raise TooLarge(f"decompressed body over the {max_bytes} byte limit") from None
    except UnsupportedEncoding as exc:
        raise UnsupportedMedia(f"unsupported content encoding {exc.encoding!r}: use {', '.join(SUPPORTED)}") from None
    except EncodingError as exc:
        raise BadRequest(f"invalid {encoding} body: {exc}") from None


def _export_route(request_type: type[Message], resolve: Resolve,
                  ingest: Callable[[Any, Message, bytes | None], Awaitable[Message]], *,
                  max_bytes: int, inflight: InflightBytes, body_timeout_s: float,
                  requests, seconds, parse: Callable[[Any, bytes], Any] | None = None,
                  ingest_parsed: Callable[[Any, Any, bytes], Awaitable[Message]] | None = None) -> Callable:
    """The aiohttp handler of an OTLP/HTTP export path taking ``request_type``: the caller is
    resolved to its tenant's target by ``resolve`` (before a byte of the body is read); a JSON
    body is parsed into one and handed to ``ingest(target, message, body)``; a protobuf body is
    read by ``parse(target, body)`` and handed to ``ingest_parsed`` when they are given (spans:
    ``Ingestor.group``), else parsed too."""
    name = request_type.DESCRIPTOR.name

    async def post(request: web.Request) -> web.StreamResponse:
        started = time.perf_counter()
        outcome = "ok"
        media = request.content_type  # without parameters such as charset
        reply_type = _reply_type(media, request.headers.get("Accept", ""))
        lease = inflight.lease()
        try:
            target = await resolve(request.headers.get("Authorization"))
            if media not in (PROTOBUF, JSON):
                raise UnsupportedMedia(f"unsupported content type {media!r}: use {PROTOBUF} or {JSON}")
            encoding = request.headers.get("Content-Encoding")
            try:
                check_encoding(encoding)
            except UnsupportedEncoding as exc:
                raise UnsupportedMedia(
                    f"unsupported content encoding {exc.encoding!r}: use {', '.join(SUPPORTED)}") from None
            body = await _read_within(request, max_bytes, lease, body_timeout_s)
            decoded = _decode(body, encoding, max_bytes)
            if decoded is not body:  # the encoded body is dropped: hold the decoded one instead
                body = None
                lease.resize(len(decoded))
            body, decoded = decoded, None
            try:
                if media == JSON:
                    export_request = parse_otlp_json(body, request_type())
                    body = None  # the hooks get the protobuf encoding, made only if one needs it
                elif parse is not None:
                    export_request = parse(target, body)
                else:
                    export_request = request_type.FromString(body)
            except (DecodeError, OtlpJsonError) as exc:
                raise BadRequest(f"cannot parse {name}: {exc}") from None
            # only the ingestor holds the parsed request (or grouped spans) from here
            if media != JSON and parse is not None:
                exporting, export_request = ingest_parsed(target, export_request, body), None
            else:
                exporting, export_request = ingest(target, export_request, body), None
            response = await exporting
            return web.Response(body=_encode(response, reply_type), content_type=reply_type)
        except Exception as exc:
            outcome = classify(exc).outcome
            audit_log.record_refusal(exc, route=f"POST {request.path}", client=request.remote)
            answer = http_error(exc, "OTLP/HTTP export", _otlp_error_render(reply_type))
            if isinstance(exc, RequestTimeout):
                return await _answer_and_close(request, answer)
            return answer
        finally:
            lease.release()
            requests.labels("http", outcome).inc()
            seconds.labels("http").observe(time.perf_counter() - started)

    return post


def traces_route(ingestor_for: Resolve, *, max_bytes: int, inflight: InflightBytes,
                 body_timeout_s: float) -> Callable:
    """The aiohttp handler of ``POST /v1/traces`` into the :class:`Ingestor` of the caller's tenant
    (``ingestor_for``): bodies up to ``max_bytes``, received within ``body_timeout_s``, held in a
    lease on ``inflight`` until answered."""
    return _export_route(ExportTraceServiceRequest, ingestor_for,
                         lambda ingestor, message, body: ingestor.export(message, body), max_bytes=max_bytes,
                         inflight=inflight, body_timeout_s=body_timeout_s, requests=METRICS.requests,
                         seconds=METRICS.request_seconds, parse=lambda ingestor, body: ingestor.group(body),
                         ingest_parsed=lambda ingestor, grouped, body: ingestor.export_grouped(grouped, body))


def logs_route(log_ingest_for: Resolve, *, max_bytes: int, inflight: InflightBytes,
               body_timeout_s: float) -> Callable:
    """The aiohttp handler of ``POST /v1/logs`` into the :class:`LogIngest` of the caller's
    tenant (the bounds of ``POST /v1/traces``)."""
    return _export_route(ExportLogsServiceRequest, log_ingest_for, lambda logs, message, body: logs.export(message, body),
                         max_bytes=max_bytes, inflight=inflight, body_timeout_s=body_timeout_s,
                         requests=METRICS.log_requests, seconds=METRICS.log_request_seconds)
