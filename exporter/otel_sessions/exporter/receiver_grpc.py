"""OTLP/gRPC: ``opentelemetry.proto.collector.trace.v1.TraceService/Export``.

Status codes as the OTLP specification says: ``INVALID_ARGUMENT`` for a request that does
not parse (not retryable), ``UNAVAILABLE`` when Redis fails (retryable), ``UNAUTHENTICATED``
without the ingest token, ``RESOURCE_EXHAUSTED`` above the message size limit (gRPC itself).
The request is taken as bytes and parsed here, so a malformed message gets INVALID_ARGUMENT
instead of gRPC's generic INTERNAL.
"""

from __future__ import annotations

import time

import grpc
from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from .auth import bearer_ok
from .ingest import Ingestor
from .metrics import METRICS
from .store import StoreUnavailable

__all__ = ["trace_service_handler", "TRACE_SERVICE"]

TRACE_SERVICE = "opentelemetry.proto.collector.trace.v1.TraceService"


def trace_service_handler(ingestor: Ingestor, token: str | None) -> grpc.GenericRpcHandler:
    """A generic handler serving OTLP ``TraceService/Export`` with ``ingestor``."""

    async def export(body: bytes, context: grpc.aio.ServicerContext) -> bytes:
        started = time.perf_counter()
        outcome = "ok"
        try:
            if token is not None:
                metadata = dict(context.invocation_metadata() or ())
                if not bearer_ok(metadata.get("authorization"), token):
                    outcome = "unauthenticated"
                    await context.abort(grpc.StatusCode.UNAUTHENTICATED, "missing or wrong bearer token")
            try:
                request = ExportTraceServiceRequest.FromString(body)
            except DecodeError as exc:
                outcome = "invalid"
                await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"cannot parse ExportTraceServiceRequest: {exc}")
            try:
                response = await ingestor.export(request)
            except StoreUnavailable as exc:
                outcome = "unavailable"
                await context.abort(grpc.StatusCode.UNAVAILABLE, f"session store unavailable, retry later ({exc})")
            return response.SerializeToString()
        finally:
            METRICS.requests.labels("grpc", outcome).inc()
            METRICS.request_seconds.labels("grpc").observe(time.perf_counter() - started)

    method = grpc.unary_unary_rpc_method_handler(export)  # bytes in, bytes out
    return grpc.method_handlers_generic_handler(TRACE_SERVICE, {"Export": method})
