"""Enrichment: ``session.id``, ``gen_ai.conversation.id`` and ``user.id`` added to forwarded spans.

They are added to spans that lack them where the store knows the span's session: by the
span's own ids, by its trace (trace joining, within the request or through Redis), and for the
thread and user, from the session's summary when the request itself does not name them
(:class:`SessionInfo`). The first value wins: an attribute a span carries is never
overwritten. Enrichment runs once per item (:class:`Item`), in the first destination worker
that sends it, off the ingest path.

Spans whose trace names no session when they arrive (parked for joining) are forwarded as
they are, unless the join wait (:mod:`.joinwait`) holds them: then the request is forwarded
without them at once (:meth:`Item.without`) and they follow later in their own item
(:meth:`Item.held`), enriched with the session their trace joined meanwhile, if any.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Collection

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from otel_sessions.exporter.forward.metrics import FORWARD_METRICS
from otel_sessions.exporter.ingest.ingestor import StoredBatch
from otel_sessions.exporter.store.sessions import SessionStore
from otel_sessions.processor import attributes as attr

__all__ = ["Item", "SessionInfo"]

log = logging.getLogger(__name__)



def stamp_session(attributes, session_id: str, thread_id: str | None, user_id: str | None) -> bool:
    """Add ``session.id``, ``gen_ai.conversation.id`` and ``user.id`` to an OTLP attribute list
    (a span's or a log record's) where it lacks them; True when any was added. The first value
    wins: an attribute already there is never overwritten."""
    present = {kv.key for kv in attributes}
    added = False
    for key, value in ((attr.SESSION_ID, session_id), (attr.THREAD_ID, thread_id), (attr.USER_ID, user_id)):
        if value and key not in present:
            kv = attributes.add()
            kv.key = key
            kv.value.string_value = value
            added = True
    return added

class Item:
    """Spans waiting to be forwarded (a stored request, or part of one); enriched lazily, once,
    off the ingest path.

    ``Item(stored)`` is the whole request; :meth:`without` the request less some spans (held
    for joining); :meth:`held` those spans alone, each enriched with its trace's session.
    ``span_count`` is the number of spans sent."""

    __slots__ = ("body", "span_count", "_stored", "_traces", "_only", "_leave_out", "_payload")

    def __init__(self, stored: StoredBatch) -> None:
        self.body = stored.body
        self.span_count = stored.span_count
        self._stored: StoredBatch | None = stored if stored.any_session else None
        self._traces: dict[bytes, str] = {}
        self._only: Collection[bytes] | None = None
        self._leave_out: Collection[bytes] | None = None
        self._payload: asyncio.Future[bytes] | None = None

    @classmethod
    def without(cls, stored: StoredBatch, leave_out: Collection[bytes], span_count: int) -> Item:
        """The request less the spans whose 24-byte key (trace id + span id) is in
        ``leave_out`` (``span_count`` of them, repeats included)."""
        item = cls(stored)
        item.span_count = stored.span_count - span_count
        item._leave_out = leave_out
        return item

    @classmethod
    def held(cls, body: bytes, only: Collection[bytes], traces: dict[bytes, str], span_count: int) -> Item:
        """The spans of the request ``body`` whose 24-byte key is in ``only`` (``span_count``
        of them), each given the session of its trace in ``traces`` (trace id -> session)."""
        item = cls.__new__(cls)
        item.body = body
        item.span_count = span_count
        item._stored = None
        item._traces = traces
        item._only = only
        item._leave_out = None
        item._payload = None
        return item

    async def payload(self, sessions: SessionInfo) -> bytes:
        if self._payload is None:
            self._payload = asyncio.ensure_future(self._enrich(sessions))
        return await asyncio.shield(self._payload)

    async def _enrich(self, sessions: SessionInfo) -> bytes:
        stored, self._stored = self._stored, None
        by_span: dict[bytes, str] = {}
        if stored is not None:
            for session_id, (thread_id, user_id) in stored.sessions.items():
                sessions.learn(session_id, thread_id, user_id)
            by_span = stored.span_sessions
        by_trace = self._traces
        only, leave_out = self._only, self._leave_out
        if not by_span and not by_trace and only is None and leave_out is None:
            return self.body
        wanted = set(by_span.values())
        wanted.update(by_trace.values())
        infos = await sessions.lookup(wanted) if wanted else {}
        request = ExportTraceServiceRequest.FromString(self.body)
        if only is not None or leave_out is not None:
            request = _select(request, only, leave_out)
        enriched = 0
        for rs in request.resource_spans:
            for ss in rs.scope_spans:
                for span in ss.spans:
                    session_id = by_span.get(span.trace_id + span.span_id) or by_trace.get(span.trace_id)
                    if session_id is None:
                        continue
                    enriched += stamp_session(span.attributes, session_id, *infos.get(session_id, (None, None)))
        if enriched:
            FORWARD_METRICS.enriched.inc(enriched)
        elif only is None and leave_out is None:
            return self.body
        return request.SerializeToString()


def _select(request: ExportTraceServiceRequest, only: Collection[bytes] | None,
             leave_out: Collection[bytes] | None) -> ExportTraceServiceRequest:
    """A request of the spans of ``request`` whose key (trace id + span id) is in ``only``
    (when given) and not in ``leave_out`` (when given), under their resource and scope;
    resource and scope entries left without spans are left out."""
    out = ExportTraceServiceRequest()
    for rs in request.resource_spans:
        new_rs = None
        for ss in rs.scope_spans:
            kept = [span for span in ss.spans
                    if (only is None or span.trace_id + span.span_id in only)
                    and (leave_out is None or span.trace_id + span.span_id not in leave_out)]
            if not kept:
                continue
            if new_rs is None:
                new_rs = out.resource_spans.add(resource=rs.resource, schema_url=rs.schema_url)
            new_rs.scope_spans.add(scope=ss.scope, schema_url=ss.schema_url).spans.extend(kept)
    return out


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
