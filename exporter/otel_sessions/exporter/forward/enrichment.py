"""Enrichment: ``session.id``, ``gen_ai.conversation.id`` and ``user.id`` added to forwarded spans.

They are added to spans that lack them where the store knows the span's session: by the
span's own ids, by its trace (trace joining, within the request or through Redis), and for the
thread and user, from the session's summary when the request itself does not name them
(:class:`SessionInfo`). The first value wins: an attribute a span carries is never
overwritten. Enrichment runs once per request (:class:`Item`), in the first destination
worker that sends it, off the ingest path. Spans whose trace names no session when they
arrive (parked for joining) are forwarded as they are.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from otel_sessions.exporter.forward.metrics import FORWARD_METRICS
from otel_sessions.exporter.ingest.ingestor import StoredBatch
from otel_sessions.exporter.store.sessions import SessionStore
from otel_sessions.processor import attributes as attr

__all__ = ["Item", "SessionInfo"]

log = logging.getLogger(__name__)


class Item:
    """A stored request waiting to be forwarded; enriched lazily, once, off the ingest path."""

    __slots__ = ("body", "span_count", "_stored", "_payload")

    def __init__(self, stored: StoredBatch):
        self.body = stored.body
        self.span_count = stored.span_count
        self._stored: StoredBatch | None = stored if stored.sessions else None
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
        by_span = stored.span_sessions
        infos = await sessions.lookup(set(by_span.values()))
        request = ExportTraceServiceRequest.FromString(self.body)
        enriched = 0
        for rs in request.resource_spans:
            for ss in rs.scope_spans:
                for span in ss.spans:
                    session_id = by_span.get(span.trace_id + span.span_id)
                    if session_id is None:
                        continue
                    thread_id, user_id = infos.get(session_id, (None, None))
                    present = {kv.key for kv in span.attributes}
                    added = False
                    for key, value in ((attr.SESSION_ID, session_id), (attr.THREAD_ID, thread_id),
                                       (attr.USER_ID, user_id)):
                        if value and key not in present:
                            kv = span.attributes.add()
                            kv.key = key
                            kv.value.string_value = value
                            added = True
                    enriched += added
        if not enriched:
            return self.body
        FORWARD_METRICS.enriched.inc(enriched)
        return request.SerializeToString()


class SessionInfo:
    """Thread and user of sessions: learnt from batches, else read from the store (LRU cache)."""

    def __init__(self, store: SessionStore | None, size: int = 10_000) -> None:
        self.store = store
        self.size = size
        self._known: OrderedDict[str, tuple[str | None, str | None]] = OrderedDict()

    def learn(self, session_id: str, thread_id: str | None, user_id: str | None) -> None:
        old_thread, old_user = self._known.get(session_id, (None, None))
        self._known[session_id] = (old_thread or thread_id, old_user or user_id)
        self._known.move_to_end(session_id)
        if len(self._known) > self.size:
            self._known.popitem(last=False)

    async def lookup(self, session_ids: set[str]) -> dict[str, tuple[str | None, str | None]]:
        missing = [s for s in session_ids if None in self._known.get(s, (None, None))]
        if missing and self.store is not None:
            try:
                summaries = await self.store.get_summaries(missing)
            except Exception as exc:  # enrichment is best effort (StoreUnavailable included)
                log.debug("forwarding: cannot read session summaries: %s", exc)
                summaries = []
            for session_id, summary in zip(missing, summaries):
                if summary is not None:
                    self.learn(session_id, summary.thread_id, summary.user_id)
        return {s: self._known.get(s, (None, None)) for s in session_ids}
