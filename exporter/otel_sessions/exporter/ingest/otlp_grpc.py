"""OTLP/gRPC: ``opentelemetry.proto.collector.trace.v1.TraceService/Export`` and
``opentelemetry.proto.collector.logs.v1.LogsService/Export``.

Status codes come from the error table (``errors.py``), as the OTLP specification says:
``INVALID_ARGUMENT`` for a request that does not parse (not retryable), ``UNAVAILABLE`` when
Redis fails (retryable), ``UNAUTHENTICATED`` without a known token, ``PERMISSION_DENIED`` for a
token without the ``ingest`` scope, ``RESOURCE_EXHAUSTED`` above the message size limit (gRPC
itself) and, with ``google.rpc.RetryInfo`` (retryable), over the tenant's quota, ``INTERNAL``
for a bug. Each call is stored in the namespace of its token's tenant. The request is taken as
bytes and parsed here (spans: grouped by ``Ingestor.group``, which builds no message where the
native span scanner reads them), so a malformed message gets INVALID_ARGUMENT instead of
gRPC's generic INTERNAL, and the bytes go on to the after-store hooks as they are.

Each message is held in a lease on the process's in-flight bytes (``inflight.py``) from the
moment the handler gets it until it is answered; when the bound is reached the call ends
``UNAVAILABLE`` with a ``google.rpc.RetryInfo`` (``errors.Overloaded``), which OTLP exporters
retry after the delay.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

import grpc
from google.protobuf.message import DecodeError, Message
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest

from otel_sessions.exporter import audit_log
from otel_sessions.exporter.errors import BadRequest, classify, grpc_abort
from otel_sessions.exporter.ingest.inflight import InflightBytes
from otel_sessions.exporter.metrics import METRICS

__all__ = ["trace_service_handler", "logs_service_handler", "TRACE_SERVICE", "LOGS_SERVICE", "Resolve"]

TRACE_SERVICE = "opentelemetry.proto.collector.trace.v1.TraceService"
LOGS_SERVICE = "opentelemetry.proto.collector.logs.v1.LogsService"


#: Resolves the ``authorization`` metadata value of a call (None when absent) to what ingests
#: for its tenant (the tenant's Ingestor or LogIngest); raises Unauthenticated / PermissionDenied.
Resolve = Callable[[str | None], Awaitable[Any]]


def _authorization(context: grpc.aio.ServicerContext) -> str | None:
    value = next((v for k, v in context.invocation_metadata() or () if k == "authorization"), None)
    return value.decode() if isinstance(value, bytes) else value


def _export_handler(service: str, name: str, resolve: Resolve, parse: Callable[[Any, bytes], Any],
                    ingest: Callable[[Any, Any, bytes], Awaitable[Message]], inflight: InflightBytes,
                    requests, seconds) -> grpc.GenericRpcHandler:
    """A generic handler of ``<service>/Export``: the caller resolved to its tenant's target by
    ``resolve``, bytes in, read by ``parse(target, body)`` here (which raises ``DecodeError`` for
    bytes that are no ``name``), handed to ``ingest(target, parsed, body)``, bytes out; each
    message held in a lease on ``inflight``."""

    async def export(body: bytes, context: grpc.aio.ServicerContext) -> bytes:
        started = time.perf_counter()
        outcome = "ok"
        lease = inflight.lease()
        try:
            target = await resolve(_authorization(context))
            lease.resize(len(body))
            try:
                request = parse(target, body)
            except DecodeError as exc:
                raise BadRequest(f"cannot parse {name}: {exc}") from None
            # only the ingestor holds the parsed request (or grouped spans) from here
            exporting, request = ingest(target, request, body), None
            response = await exporting
            return response.SerializeToString()
        except Exception as exc:
            outcome = classify(exc).outcome
            audit_log.record_refusal(exc, route=f"{service}/Export", client=audit_log.grpc_peer(context))
            await grpc_abort(context, exc, "OTLP/gRPC export")
            raise AssertionError("unreachable") from None
        finally:
            lease.release()
            requests.labels("grpc", outcome).inc()
            seconds.labels("grpc").observe(time.perf_counter() - started)

    method = grpc.unary_unary_rpc_method_handler(export)  # bytes in, bytes out
    return grpc.method_handlers_generic_handler(service, {"Export": method})


def trace_service_handler(ingestor_for: Resolve, inflight: InflightBytes) -> grpc.GenericRpcHandler:
    """A generic handler serving OTLP ``TraceService/Export`` with the :class:`Ingestor` of the
    caller's tenant (``ingestor_for``), each message held in a lease on ``inflight``."""
    return _export_handler(TRACE_SERVICE, "ExportTraceServiceRequest", ingestor_for,
                           lambda ingestor, body: ingestor.group(body),
                           lambda ingestor, grouped, body: ingestor.export_grouped(grouped, body),
                           inflight, METRICS.requests, METRICS.request_seconds)


def logs_service_handler(log_ingest_for: Resolve, inflight: InflightBytes) -> grpc.GenericRpcHandler:
    """A generic handler serving OTLP ``LogsService/Export`` with the :class:`LogIngest` of the
    caller's tenant (the same in-flight bound as the traces)."""
    return _export_handler(LOGS_SERVICE, ExportLogsServiceRequest.DESCRIPTOR.name, log_ingest_for,
                           lambda _logs, body: ExportLogsServiceRequest.FromString(body),
                           lambda logs, request, body: logs.export(request, body),
                           inflight, METRICS.log_requests, METRICS.log_request_seconds)
