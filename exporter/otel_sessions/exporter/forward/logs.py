"""Forwarding of log records (``--forward``): every received log request sent on over OTLP,
with its session, to the same destinations as the spans.

:class:`LogForwarding` is a :attr:`LogIngest.after_store
<otel_sessions.exporter.ingest.log_ingest.LogIngest.after_store>` hook: for each stored log
request it queues one :class:`LogItem` per destination and returns at once. Each ``--forward``
URL gets a log destination beside its span destination: the same transport, retry policy and
drain (``destinations.py``), its own queue (``--forward-queue`` log records) and its own
metrics (``otel_sessions_forward_log_records_*``), so a burst of one signal never holds the
other. What is sent is the request as received, in the stock OTLP wire format (gRPC
``LogsService/Export``, or HTTP ``POST /v1/logs`` with ``application/x-protobuf``), with
``session.id``, ``gen_ai.conversation.id`` and ``user.id`` added to the records that lack
them where the store knows the record's session: it named one, its trace named one in the
request, or the store named its trace's owner while the request was written. A request with
records whose trace named no session yet is held by the join wait (``--forward-join-wait``,
:mod:`.logjoin`) until their traces name one, then forwarded with it.
"""

from __future__ import annotations

import asyncio

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest

from otel_sessions.exporter.forward.destinations import Destination, GrpcDestination, HttpDestination
from otel_sessions.exporter.forward.enrichment import SessionInfo, stamp_session
from otel_sessions.exporter.forward.forwarding import ForwardSettings
from otel_sessions.exporter.forward.logjoin import LogJoinWait
from otel_sessions.exporter.forward.metrics import FORWARD_METRICS
from otel_sessions.exporter.ingest.log_ingest import StoredLogs
from otel_sessions.exporter.store.sessions import SessionStore

__all__ = ["LogForwarding", "LogItem", "LOGS_EXPORT_METHOD"]

LOGS_EXPORT_METHOD = "/opentelemetry.proto.collector.logs.v1.LogsService/Export"


class LogItem:
    """A stored log request waiting to be forwarded; enriched lazily, once, off the ingest
    path. ``span_count`` (the destinations' unit) is its record count."""

    __slots__ = ("body", "span_count", "_stored", "_payload")

    def __init__(self, stored: StoredLogs) -> None:
        self.body = stored.body
        self.span_count = stored.record_count
        self._stored: StoredLogs | None = stored if any(stored.record_sessions) else None
        self._payload: asyncio.Future[bytes] | None = None

    async def payload(self, sessions: SessionInfo) -> bytes:
        if self._payload is None:
            self._payload = asyncio.ensure_future(self._enrich(sessions))
        return await asyncio.shield(self._payload)

    async def _enrich(self, sessions: SessionInfo) -> bytes:
        stored, self._stored = self._stored, None
        if stored is None:
            return self.body
        for session_id, (thread_id, user_id) in stored.sessions.items():
            sessions.learn(session_id, thread_id, user_id)
        infos = await sessions.lookup({s for s in stored.record_sessions if s})
        request = ExportLogsServiceRequest.FromString(self.body)
        owners = iter(stored.record_sessions)
        enriched = 0
        for rl in request.resource_logs:
            for sl in rl.scope_logs:
                for record in sl.log_records:
                    session_id = next(owners, None)
                    if session_id is None:
                        continue
                    enriched += stamp_session(record.attributes, session_id, *infos.get(session_id, (None, None)))
        if not enriched:
            return self.body
        FORWARD_METRICS.logs_enriched.inc(enriched)
        return request.SerializeToString()


class _LogMetrics:
    """The log destinations' metrics in place of the span ones (the retries are shared)."""

    def _log_metrics(self: Destination) -> None:
        self._sent = FORWARD_METRICS.logs_sent.labels(self.url)
        self._gauge = FORWARD_METRICS.logs_queued.labels(self.url)

    def _drop(self: Destination, records: int, reason: str) -> None:
        if records:
            FORWARD_METRICS.logs_dropped.labels(self.url, reason).inc(records)


class GrpcLogDestination(_LogMetrics, GrpcDestination):
    """``grpc://host:port``: OTLP/gRPC ``LogsService/Export``, protobuf, no TLS."""

    def __init__(self, url: str, **options) -> None:
        super().__init__(url, **options)
        self._log_metrics()

    async def _open(self) -> None:
        await super()._open()
        self._call = self._channel.unary_unary(LOGS_EXPORT_METHOD)


class HttpLogDestination(_LogMetrics, HttpDestination):
    """``http(s)://host:port[/path]``: OTLP/HTTP ``POST /v1/logs`` with protobuf (a URL
    ending in ``/v1/traces`` has it replaced by ``/v1/logs``)."""

    def __init__(self, url: str, **options) -> None:
        super().__init__(url, **options)
        self._log_metrics()

    async def _open(self) -> None:
        await super()._open()
        base = self.url.rstrip("/")
        base = base.removesuffix("/v1/traces").removesuffix("/v1/logs")
        self.endpoint = base + "/v1/logs"


class LogForwarding:
    """The log requests' ``after_store`` hook: every stored log request to each destination.

    ``await start()`` before ingest begins, ``await stop(grace)`` after the receivers stopped
    and before the store closes (as :class:`~.forwarding.Forwarding`)."""

    def __init__(self, settings: ForwardSettings, sessions: SessionInfo, store: SessionStore | None = None,
                 **backoff) -> None:
        options = dict(max_queued_spans=settings.max_queued_spans, retry_max_s=settings.retry_max_s,
                       timeout_s=settings.timeout_s, sessions=sessions, **backoff)
        self.destinations: list[Destination] = [
            GrpcLogDestination(url, **options) if url.startswith("grpc://") else HttpLogDestination(url, **options)
            for url in settings.urls
        ]
        self.join = (LogJoinWait(settings.join_wait_s, settings.join_max_spans, store, self._send)
                     if settings.join_wait_s > 0 else None)

    async def start(self) -> None:
        for destination in self.destinations:
            await destination.start()
        if self.join is not None:
            await self.join.start()

    def learn(self, owners) -> None:
        """Trace owners (trace id -> session) learnt elsewhere (the span requests): held records
        of those traces are joined."""
        if self.join is not None and self.join.held_records:
            self.join.learn(owners)

    def __call__(self, stored: StoredLogs) -> None:
        """Queue the stored request for every destination (held by the join wait while some
        of its records' traces name no session). Never blocks, never raises into ingest."""
        if not stored.record_count:
            return
        held = self.join is not None and bool(stored.unjoined) and self.join.hold(stored, self.destinations)
        if not held:
            item = LogItem(stored)
            for destination in self.destinations:
                destination.offer(item)
        self.learn(stored.trace_owners)

    def _send(self, stored: StoredLogs, destinations: list[Destination]) -> None:
        """A request the join wait released, to the destinations that reserved room for it."""
        item = LogItem(stored)
        for destination in destinations:
            destination.offer(item, reserved=True)

    async def stop(self, grace: float = 10.0) -> None:
        """Release the held requests, then drain every destination within ``grace`` seconds."""
        deadline = asyncio.get_running_loop().time() + grace
        if self.join is not None:
            await self.join.stop()
        await asyncio.gather(*(d.stop(deadline) for d in self.destinations), return_exceptions=True)
