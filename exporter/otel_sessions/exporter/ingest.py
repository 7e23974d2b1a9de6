"""What every OTLP transport shares: decode, group, store, answer.

:meth:`Ingestor.export` is called by the gRPC and the HTTP receivers with a parsed request.
It acknowledges (returns a response) only after the store wrote the batch; a Redis failure
propagates as :class:`~otel_sessions.exporter.store.StoreUnavailable`, which the receivers
turn into gRPC ``UNAVAILABLE`` / HTTP 503 so that exporters retry.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from .batch import Batch, BatchBuilder
from .metrics import METRICS
from .store import SessionStore, StoreUnavailable, WriteResult

__all__ = ["Ingestor"]

log = logging.getLogger(__name__)

#: Called after a batch was stored: the request, the batch (sessions known) and the result.
AfterStore = Callable[[ExportTraceServiceRequest, Batch, WriteResult], Awaitable[None] | None]


class Ingestor:
    def __init__(self, store: SessionStore, builder: BatchBuilder | None = None) -> None:
        self.store = store
        self.builder = builder or store.builder
        self.after_store: list[AfterStore] = []

    async def export(self, request: ExportTraceServiceRequest) -> ExportTraceServiceResponse:
        """Store every span of ``request``; raises StoreUnavailable when Redis fails."""
        batch = self.builder.build(request.resource_spans)
        METRICS.spans_received.inc(batch.span_count + batch.rejected)
        if batch.invalid_ids:
            METRICS.invalid_ids.inc(batch.invalid_ids)
        try:
            result = await self.store.write(batch)
        except StoreUnavailable:
            METRICS.redis_errors.inc()
            raise
        METRICS.spans_stored.inc(result.spans_new)
        if result.spans_duplicate:
            METRICS.spans_duplicate.inc(result.spans_duplicate)
        if result.spans_joined:
            METRICS.spans_joined.inc(result.spans_joined)
        if result.spans_parked:
            METRICS.spans_parked.inc(result.spans_parked)
        for hook in self.after_store:
            try:
                outcome = hook(request, batch, result)
                if outcome is not None:
                    await outcome
            except Exception:  # a hook (e.g. forwarding) never fails ingest
                log.exception("after-store hook failed")
        response = ExportTraceServiceResponse()
        if batch.rejected:
            METRICS.spans_rejected.inc(batch.rejected)
            response.partial_success.rejected_spans = batch.rejected
            response.partial_success.error_message = "; ".join(batch.errors)
        return response
