"""What every OTLP transport shares: group, store, answer.

:meth:`Ingestor.group` groups a serialized request for the receivers (with the native span
scanner's ``native.NativeBatchBuilder`` where it is built, else parsed and walked by the
pure-Python :class:`~.grouping.BatchBuilder`) and :meth:`Ingestor.export_grouped` stores it;
:meth:`Ingestor.export` takes a parsed request (OTLP/JSON, tests). Storing has the store write
the groups, regroups what the store hands back (spans parked earlier whose trace is now claimed,
orphans whose trace turned out to have a session, session writes refused because some of
their spans were stored before), writes those, then has the store update the indexes. It
acknowledges (returns a response) only after all of that succeeded; a Redis failure
propagates as :class:`~.errors.StoreUnavailable`, which the receivers answer as retryable.

The write path is shared with log records (``log_ingest.py``): :meth:`Ingestor.write` takes
a span :class:`Batch` and a :class:`~.log_grouping.LogBatch` (either may be empty), so a trace
claimed by a span adopts the log records waiting for it, and a trace claimed by a log record
adopts the spans waiting for it, in the same rounds.

After a request is stored, each hook in :attr:`Ingestor.after_store` gets a
:class:`StoredBatch`: the request's bytes and what grouping and writing learnt (sessions,
span -> session, trace -> session, the spans the store parked for joining, services and
operations), so no hook parses or hashes the request again to learn them.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from functools import cached_property
from typing import NamedTuple

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.logs.v1.logs_pb2 import LogsData

from otel_sessions.exporter.errors import StoreUnavailable
from otel_sessions.exporter.ingest.grouping import BatchBuilder
from otel_sessions.exporter.ingest.groups import Batch, Group
from otel_sessions.exporter.ingest.log_grouping import LogBatch, LogBatchBuilder, LogGroup
from otel_sessions.exporter.ingest.quota import TenantQuota
from otel_sessions.exporter.ingest.redaction import Redactor
from otel_sessions.exporter.metrics import METRICS
from otel_sessions.exporter.store.codec import decode_chunks
from otel_sessions.exporter.store.log_codec import decode_log_chunks
from otel_sessions.exporter.store.records import (
    LogWrite,
    SessionFigures,
    SessionWrite,
    TraceJoin,
    WriteResult,
)
from otel_sessions.exporter.store.sessions import SessionStore
from otel_sessions.exporter.tenants import DEFAULT_TENANT

__all__ = ["Ingestor", "Grouped", "StoredBatch", "AfterStore"]

log = logging.getLogger(__name__)


class StoredBatch:
    """One stored request, as the after-store hooks see it (read-only by convention).

    :attr:`body`: the request as serialized OTLP protobuf (the bytes received, or serialized on
    first use when the request came as JSON); ``span_count``: its spans (refused ones
    included); ``sessions``: session id -> (thread id, user id) named in the request;
    ``operations``: service name ("" when none) -> {(span kind, span name)}.

    Built on first use (a hook that does not ask pays nothing):

    * :attr:`span_sessions`: trace id + span id (24 bytes) -> session, for every span whose
      session is known now: it named one, its trace named one in the request, or the store
      (or this process's earlier claim) named its trace's owner while the request was written;
    * :attr:`trace_owners`: trace id -> session, for every trace of the request whose session
      is known now (the store's answer where it gave one: the first claim of a trace wins);
    * :attr:`parked`: trace id -> the 24-byte keys of the request's spans whose trace had
      named no session anywhere when the request was stored (the store parked them until a
      span of the trace names one; a span repeated in the request is listed twice)."""

    def __init__(self, body: bytes | None, batch: Batch, request: ExportTraceServiceRequest | None = None) -> None:
        """``body`` the request's bytes, or None with ``request`` given (serialized on first use)."""
        self._body = body
        self._request = request
        self.span_count = batch.span_count + batch.rejected
        self.sessions = {sid: (g.thread_id, g.user_id) for sid, g in batch.sessions.items()}
        self.operations = batch.operations
        self._batch = batch

    @property
    def any_session(self) -> bool:
        """True when some span of the request has a known session (cheap)."""
        batch = self._batch
        return bool(self.sessions) or any(trace_id in batch.owners for trace_id in batch.orphans)

    @cached_property
    def body(self) -> bytes:
        body = self._body if self._body is not None else self._request.SerializeToString()
        self._request = None
        return body

    @cached_property
    def span_sessions(self) -> dict[bytes, str]:
        batch = self._batch
        out = {record.trace_id + record.span_id: session_id
               for session_id, group in batch.sessions.items() for record in group.spans}
        for trace_id, group in batch.orphans.items():
            owner = batch.owners.get(trace_id)
            if owner is not None:
                for record in group.spans:
                    out.setdefault(record.trace_id + record.span_id, owner)
        return out

    @cached_property
    def trace_owners(self) -> dict[bytes, str]:
        batch = self._batch
        if not batch.owners:
            return batch.trace_sessions
        return {**batch.trace_sessions, **batch.owners}

    @cached_property
    def parked(self) -> dict[bytes, list[bytes]]:
        batch = self._batch
        return {trace_id: [record.trace_id + record.span_id for record in group.spans]
                for trace_id, group in batch.orphans.items() if trace_id not in batch.owners}


#: Called after a request was stored; must not block (queue work instead) and never raises.
AfterStore = Callable[[StoredBatch], Awaitable[None] | None]


class Grouped(NamedTuple):
    """A request's spans grouped by :meth:`Ingestor.group`, and the request as redacted when
    the redactor changed it (the hooks get it instead of the bytes received)."""

    batch: Batch
    redacted: ExportTraceServiceRequest | None


class Ingestor:
    """Groups requests and writes them through one :class:`SessionStore` (one tenant's namespace).

    With a ``redactor`` (``--redact-attributes``, ``--redact-patterns``), each request is
    redacted in place before it is grouped, and the after-store hooks (forwarding) get the
    redacted request, serialized again."""

    def __init__(self, store: SessionStore, builder: BatchBuilder, log_builder: LogBatchBuilder | None = None,
                 redactor: Redactor | None = None, tenant: str = DEFAULT_TENANT,
                 quota: TenantQuota | None = None) -> None:
        self.store = store
        #: the tenant whose namespace ``store`` is (the ``tenant`` label of the per-tenant metrics)
        self.tenant = tenant
        #: the tenant's quota, checked before anything of a request is written (None: no quota)
        self.quota = quota
        self._spans_received = METRICS.tenant_spans_received.labels(tenant)
        self.builder = builder
        self.log_builder = log_builder or LogBatchBuilder(max_id_length=builder.max_id_length)
        self.redactor = redactor if redactor else None
        self.after_store: list[AfterStore] = []

    @property
    def reads_bytes(self) -> bool:
        """True when :meth:`group` reads requests with the native span scanner (its builder
        has it, and no redaction rule needs the parsed messages)."""
        return self.builder.native and self.redactor is None

    def group(self, body: bytes) -> Grouped:
        """The spans of a serialized ``ExportTraceServiceRequest``, grouped: read by the native
        span scanner when :attr:`reads_bytes`, else parsed, redacted and walked. Raises
        ``google.protobuf.message.DecodeError`` when ``body`` does not parse."""
        if self.reads_bytes:
            return Grouped(self.builder.build_bytes(body), None)
        request = ExportTraceServiceRequest.FromString(body)
        redacted = self._redact(request)
        return Grouped(self.builder.build(request.resource_spans), request if redacted else None)

    async def export_grouped(self, grouped: Grouped, body: bytes) -> ExportTraceServiceResponse:
        """Store a request grouped by :meth:`group` from ``body`` (the hooks get ``body``, or
        the redacted request serialized again). Raises :class:`StoreUnavailable` when Redis
        fails."""
        if grouped.redacted is not None:
            return await self._store(grouped.batch, None, grouped.redacted)
        return await self._store(grouped.batch, body, None)

    async def export(self, request: ExportTraceServiceRequest, body: bytes | None = None) -> ExportTraceServiceResponse:
        """Store every span of ``request`` (``body``: its serialized form, when at hand).

        With ``body`` given, the parsed request is let go once grouped (the hooks get the
        bytes), so it is not held while Redis answers: callers should not keep a reference to
        it across the await either. A request the redactor changed is kept instead, and the
        hooks get it serialized again (on first use). Raises :class:`StoreUnavailable` when
        Redis fails."""
        if self._redact(request):
            body = None  # the hooks get the redacted request
        batch = self.builder.build(request.resource_spans)
        if body is not None:
            request = None
        return await self._store(batch, body, request)

    def _redact(self, request: ExportTraceServiceRequest) -> int:
        """Redact ``request`` in place (when a redactor is set); returns the values changed."""
        if self.redactor is None:
            return 0
        redacted = self.redactor.redact_traces(request)
        if redacted:
            METRICS.redacted_values.inc(redacted)
        return redacted

    async def _store(self, batch: Batch, body: bytes | None,
                     request: ExportTraceServiceRequest | None) -> ExportTraceServiceResponse:
        """Write ``batch``, run the hooks (with ``body``, else ``request`` serialized), answer."""
        METRICS.spans_received.inc(batch.span_count + batch.rejected)
        self._spans_received.inc(batch.span_count + batch.rejected)
        if batch.invalid_ids:
            METRICS.invalid_ids.inc(batch.invalid_ids)
        if batch.invalid_values:
            METRICS.invalid_values.inc(batch.invalid_values)
        try:
            if self.quota is not None:  # refuses the whole request before anything is written
                await self.quota.admit("spans", batch.span_count, batch.sessions.keys())
            result = await self.write(batch)
        except StoreUnavailable:
            METRICS.redis_errors.inc()
            raise
        count_written(result, self.tenant)
        if self.after_store:
            await self._run_hooks(request, body, batch)
        response = ExportTraceServiceResponse()
        if batch.rejected:
            METRICS.spans_rejected.inc(batch.rejected)
            response.partial_success.rejected_spans = batch.rejected
        if batch.errors:  # refused spans, or values dropped from kept spans (a warning, per OTLP)
            response.partial_success.error_message = "; ".join(batch.errors)
        return response

    async def write(self, batch: Batch, logs: LogBatch | None = None) -> WriteResult:
        """Write a grouped span batch and log batch (this ingestor's own objects: regrouping
        changes them); either may be empty.

        Afterwards ``batch.owners`` holds the session of every trace the store (or this
        process's earlier claim) named an owner for, and ``batch.orphans`` the orphan groups
        not written straight into a session known before the write: those whose trace is in
        ``batch.owners`` joined it through the store, the others were parked."""
        logs = logs if logs is not None else LogBatch()
        result = WriteResult()
        result.spans_joined += batch.join_local()
        result.logs_joined += logs.join_local()
        now_ms = int(time.time() * 1000)
        for trace_id in list(batch.orphans):
            owner = self.store.known_owner(trace_id, now_ms)
            if owner is not None:
                batch.owners[trace_id] = owner
                result.trace_owners[trace_id] = owner
                _adopt(batch.sessions, owner, batch.orphans.pop(trace_id), result)
        for trace_id in list(logs.orphans):
            owner = self.store.known_owner(trace_id, now_ms)
            if owner is not None:
                result.trace_owners[trace_id] = owner
                _adopt(logs.sessions, owner, logs.orphans.pop(trace_id), result)

        pending: list[tuple[str, Group | LogGroup]] = [(sid, group) for sid, group in batch.sessions.items()
                                                       if group.spans]
        pending += [(sid, group) for sid, group in logs.sessions.items() if group.records]
        writes = [group.to_write(sid) for sid, group in pending]
        claims = dict(logs.trace_sessions)
        claims.update(batch.trace_sessions)
        join = TraceJoin(claims=claims,
                         parked={trace_id: group.payload().chunk for trace_id, group in batch.orphans.items()},
                         parked_logs={trace_id: group.chunk() for trace_id, group in logs.orphans.items()})
        joined, replies = await self.store.write(join, writes, now_ms)

        # what the store handed back to be written into a session
        adopted: dict[str, Group] = {}
        adopted_logs: dict[str, LogGroup] = {}
        for trace_id in joined.parked:
            result.spans_parked += batch.orphans[trace_id].span_count
        for trace_id in joined.parked_logs:
            result.logs_parked += logs.orphans[trace_id].record_count
        for trace_id, owner in joined.owners.items():
            batch.owners[trace_id] = owner
            result.trace_owners[trace_id] = owner
            orphan = batch.orphans.get(trace_id)  # left in place: the hooks see it joined
            if orphan is not None:
                _adopt(adopted, owner, orphan, result)
            log_orphan = logs.orphans.pop(trace_id, None)
            if log_orphan is not None:
                _adopt(adopted_logs, owner, log_orphan, result)
            batch.trace_sessions.setdefault(trace_id, owner)
        for owner, chunks in joined.adopt:
            parked = self.builder.build_bytes(decode_chunks(chunks), force_session=owner)  # a TracesData
            for session_id, group in parked.sessions.items():
                _adopt(adopted, session_id, group, result)
        for owner, chunks in joined.adopt_logs:
            parked_logs = self.log_builder.build(LogsData.FromString(decode_log_chunks(chunks)).resource_logs,
                                                 force_session=owner)
            for session_id, log_group in parked_logs.sessions.items():
                _adopt(adopted_logs, session_id, log_group, result)

        stored: dict[str, tuple[SessionWrite | LogWrite, SessionFigures]] = {}
        while True:
            again: list[tuple[str, Group | LogGroup]] = []
            for (session_id, group), write, reply in zip(pending, writes, replies):
                is_log = type(write) is LogWrite
                if reply.status < 0:  # partly stored before: send the new spans (or records) again
                    fresh = group.only(reply.new_mask or b"")
                    if is_log:
                        result.logs_duplicate += group.record_count - fresh.record_count
                    else:
                        result.spans_duplicate += group.span_count - fresh.span_count
                    again.append((session_id, fresh))
                    continue
                if is_log:
                    result.logs_new += reply.status
                    result.logs_duplicate += write.record_count - reply.status
                else:
                    result.spans_new += reply.status
                    result.spans_duplicate += write.span_count - reply.status
                earlier = stored.get(session_id)
                if earlier is not None:  # written again this request (adopted spans): keep what it named
                    write = write._replace(user_id=write.user_id or earlier[0].user_id,
                                           thread_id=write.thread_id or earlier[0].thread_id)
                stored[session_id] = (write, reply.figures)
            again += [(sid, group) for sid, group in adopted.items() if group.spans]
            again += [(sid, group) for sid, group in adopted_logs.items() if group.records]
            adopted, adopted_logs = {}, {}
            if not again:
                break
            pending = again
            writes = [group.to_write(sid) for sid, group in pending]
            _joined, replies = await self.store.write(None, writes, now_ms)
        result.sessions = len(stored)
        await self.store.finish(list(stored.values()), joined.trims, now_ms, joined.log_trims)
        return result

    async def _run_hooks(self, request: ExportTraceServiceRequest | None, body: bytes | None, batch: Batch) -> None:
        stored = StoredBatch(body, batch, request)
        for hook in self.after_store:
            try:
                outcome = hook(stored)
                if outcome is not None:
                    await outcome
            except Exception:  # a hook (e.g. forwarding) never fails ingest
                log.exception("after-store hook failed")


def _adopt(groups: dict, session_id: str, group: Group | LogGroup, result: WriteResult) -> None:
    """Merge ``group`` (spans or log records joining by trace) into ``groups[session_id]``."""
    target = groups.get(session_id)
    if isinstance(group, LogGroup):
        if target is None:
            target = groups[session_id] = LogGroup()
        result.logs_joined += group.record_count
    else:
        if target is None:
            target = groups[session_id] = Group()
        result.spans_joined += group.span_count
    target.merge(group)


def count_written(result: WriteResult, tenant: str = DEFAULT_TENANT) -> None:
    """Add what a write stored, found stored, joined and parked to the service metrics (and
    what it stored to ``tenant``'s)."""
    if result.spans_new:
        METRICS.tenant_spans_stored.labels(tenant).inc(result.spans_new)
    if result.logs_new:
        METRICS.tenant_logs_stored.labels(tenant).inc(result.logs_new)
    for counter, amount in ((METRICS.spans_stored, result.spans_new), (METRICS.spans_duplicate, result.spans_duplicate),
                            (METRICS.spans_joined, result.spans_joined), (METRICS.spans_parked, result.spans_parked),
                            (METRICS.logs_stored, result.logs_new), (METRICS.logs_duplicate, result.logs_duplicate),
                            (METRICS.logs_joined, result.logs_joined), (METRICS.logs_parked, result.logs_parked)):
        if amount:
            counter.inc(amount)
