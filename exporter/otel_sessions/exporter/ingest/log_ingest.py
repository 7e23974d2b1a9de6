"""OTLP log export requests: group, store (the ingestor's write path), answer.

:meth:`LogIngest.export` is called by the gRPC (``LogsService/Export``) and HTTP
(``POST /v1/logs``) receivers with a parsed ``ExportLogsServiceRequest`` (and its bytes). It
groups the records (:class:`~.log_grouping.LogBatchBuilder`) and has
:meth:`Ingestor.write <otel_sessions.exporter.ingest.ingestor.Ingestor.write>` store them,
with the trace joining the spans use. It acknowledges only after everything was written; a
Redis failure propagates as :class:`~.errors.StoreUnavailable` (retryable).

After a request is stored, each hook in :attr:`LogIngest.after_store` gets a
:class:`StoredLogs` (forwarding).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)

from otel_sessions.exporter.errors import StoreUnavailable
from otel_sessions.exporter.ingest.groups import Batch
from otel_sessions.exporter.ingest.ingestor import Ingestor, count_written
from otel_sessions.exporter.ingest.log_grouping import LogBatch
from otel_sessions.exporter.metrics import METRICS

__all__ = ["LogIngest", "StoredLogs", "AfterStoreLogs"]

log = logging.getLogger(__name__)


class StoredLogs:
    """One stored log request, as the after-store hooks see it (read-only by convention).

    ``body``: the request as serialized OTLP protobuf; ``record_count``: its records (refused
    ones included); ``sessions``: session id -> (thread id, user id) named in the request;
    ``record_sessions``: per record of the request, in request order, its session when known
    after the write, else None; ``unjoined``: trace id -> the indexes (in ``record_sessions``)
    of its records whose session is not known yet (the store parked them for joining);
    ``trace_owners``: trace id -> session, of the traces the request or the write named."""

    def __init__(self, body: bytes, batch: LogBatch, trace_owners: dict[bytes, str]) -> None:
        self.body = body
        self.record_count = batch.record_count + batch.rejected
        self.sessions = {sid: (g.thread_id, g.user_id) for sid, g in batch.sessions.items()}
        self.trace_owners = {**trace_owners, **batch.trace_sessions}
        self.record_sessions: list[str | None] = []
        self.unjoined: dict[bytes, list[int]] = {}
        for index, owner in enumerate(batch.record_sessions):
            if isinstance(owner, bytes):  # a trace id: the record named no session
                session_id = self.trace_owners.get(owner)
                if session_id is None:
                    self.unjoined.setdefault(owner, []).append(index)
                owner = session_id
            self.record_sessions.append(owner)


#: Called after a log request was stored; must not block and never raises.
AfterStoreLogs = Callable[[StoredLogs], Awaitable[None] | None]


class LogIngest:
    """Log requests into the :class:`Ingestor`'s store."""

    def __init__(self, ingestor: Ingestor) -> None:
        self.ingestor = ingestor
        self.after_store: list[AfterStoreLogs] = []

    @property
    def store(self):
        return self.ingestor.store

    async def export(self, request: ExportLogsServiceRequest, body: bytes | None = None) -> ExportLogsServiceResponse:
        """Store every log record of ``request`` (``body``: its serialized form, when at hand).

        With ``body`` given, the parsed request is let go once grouped (as the span ingestor
        does). Raises :class:`StoreUnavailable` when Redis fails."""
        logs = self.ingestor.log_builder.build(request.resource_logs)
        if body is not None:
            request = None
        METRICS.logs_received.inc(logs.record_count + logs.rejected)
        METRICS.tenant_logs_received.labels(self.ingestor.tenant).inc(logs.record_count + logs.rejected)
        if logs.invalid_ids:
            METRICS.invalid_ids.inc(logs.invalid_ids)
        if logs.invalid_values:
            METRICS.invalid_values.inc(logs.invalid_values)
        record_sessions = list(logs.record_sessions)
        trace_sessions = dict(logs.trace_sessions)
        try:
            if self.ingestor.quota is not None:  # refuses the whole request before anything is written
                await self.ingestor.quota.admit("logs", logs.record_count, logs.sessions.keys())
            result = await self.ingestor.write(Batch(), logs)
        except StoreUnavailable:
            METRICS.redis_errors.inc()
            raise
        count_written(result, self.ingestor.tenant)
        if self.after_store:
            logs.record_sessions, logs.trace_sessions = record_sessions, trace_sessions
            await self._run_hooks(request, body, logs, result.trace_owners)
        response = ExportLogsServiceResponse()
        if logs.rejected:
            METRICS.logs_rejected.inc(logs.rejected)
            response.partial_success.rejected_log_records = logs.rejected
        if logs.errors:
            response.partial_success.error_message = "; ".join(logs.errors)
        return response

    async def _run_hooks(self, request: ExportLogsServiceRequest | None, body: bytes | None, logs: LogBatch,
                         trace_owners: dict[bytes, str]) -> None:
        stored = StoredLogs(body if body is not None else request.SerializeToString(), logs, trace_owners)
        for hook in self.after_store:
            try:
                outcome = hook(stored)
                if outcome is not None:
                    await outcome
            except Exception:  # a hook (e.g. forwarding) never fails ingest
                log.exception("after-store hook failed")
