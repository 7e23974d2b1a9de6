"""Jaeger reads: services, operations, a trace by id, and the trace search.

Searching by ``session.id``, ``user.id`` or ``gen_ai.conversation.id`` selects sessions through
the store's indexes (the session itself, the user's and the thread's sessions); other tags,
the service, the operation, the time range and the durations must all hold for one span of a
trace, as in Jaeger. Without a session tag the search looks at the most recent sessions
(at most :data:`SEARCH_MAX_SESSIONS`) and at the most recent traces that never named a session
(at most :data:`SEARCH_MAX_PARKED`, from the store's parked-trace index), newest trace first.
A span's log records (of its session, or waiting with its trace) are added to its Jaeger
``logs`` (``logs.py``).
"""

from __future__ import annotations

import time
from typing import Any

from opentelemetry.proto.logs.v1.logs_pb2 import LogsData
from opentelemetry.proto.trace.v1.trace_pb2 import TracesData

from otel_sessions.exporter.jaeger.logs import attach_logs, span_logs
from otel_sessions.exporter.jaeger.params import TraceQuery
from otel_sessions.exporter.jaeger.translate import (
    SESSION_SERVICE,
    SessionIds,
    session_trace,
    session_trace_id,
    traces_to_jaeger,
)
from otel_sessions.exporter.store.service_index import ServiceIndex
from otel_sessions.exporter.store.sessions import SessionStore
from otel_sessions.exporter.store.summary import SessionSummary
from otel_sessions.processor import attributes as attr

__all__ = ["JaegerQuery", "SEARCH_MAX_SESSIONS", "SEARCH_MAX_PARKED", "SESSION_TAGS"]

#: Sessions a search without a session tag looks at, newest first.
SEARCH_MAX_SESSIONS = 500
#: Traces without a session (kept by trace id only) a search without a session tag looks at,
#: most recently written first.
SEARCH_MAX_PARKED = 500
#: Tags that select candidate sessions through the store's indexes.
SESSION_TAGS = (attr.SESSION_ID, attr.USER_ID, attr.THREAD_ID)


class JaegerQuery:
    """Jaeger reads over a :class:`SessionStore` and its :class:`ServiceIndex` (bounded: no
    keyspace scans)."""

    def __init__(self, store: SessionStore, index: ServiceIndex) -> None:
        self.store = store
        self.index = index

    def _cutoff_ms(self) -> float:
        return time.time() * 1000 - self.index.retention_ms

    async def services(self) -> list[str]:
        return sorted(await self.index.services(self._cutoff_ms()) | {SESSION_SERVICE})

    async def operations(self, service: str, span_kind: str | None = None) -> list[dict[str, str]]:
        if service == SESSION_SERVICE:
            return []
        out = [{"name": name, "spanKind": kind} for kind, name in await self.index.operations(service, self._cutoff_ms())
               if span_kind is None or span_kind == kind]
        return sorted(out, key=lambda op: (op["name"], op["spanKind"]))

    async def session_trace(self, session_id: str) -> dict[str, Any] | None:
        summary = await self.store.get_session(session_id)
        if summary is None:
            return None
        data = await self.store.get_spans(session_id) or TracesData()
        return attach_logs(session_trace(summary, data), await self._span_logs(summary))

    async def trace(self, trace_id: bytes) -> dict[str, Any] | None:
        """A trace by id: a synthetic session trace, a session's trace, or spans kept by trace."""
        synthetic = await self.index.synthetic_session(trace_id)
        if synthetic:
            found = await self.session_trace(synthetic)
            if found is not None:
                return found
        session_id = await self.store.get_trace_session(trace_id)
        if session_id is not None:
            data = await self.store.get_spans(session_id)
            if data is not None:
                summary = await self.store.get_session(session_id)
                built = traces_to_jaeger(data, SessionIds.of(summary, session_id), only=trace_id)
                if built:
                    return attach_logs(built[0].to_json(), await self._span_logs(summary))
        parked = await self.store.get_parked_spans(trace_id)
        built = traces_to_jaeger(parked, None, only=trace_id)
        if built:  # with the log records waiting for the trace too
            return attach_logs(built[0].to_json(), span_logs(await self.store.logs.get_parked_logs(trace_id)))
        # a session written before its synthetic id was recorded: look among recent sessions
        recent, _total = await self.store.recent_session_ids(limit=SEARCH_MAX_SESSIONS)
        for session_id in recent:
            if session_trace_id(session_id) == trace_id:
                return await self.session_trace(session_id)
        return None

    async def _candidates(self, q: TraceQuery) -> list[SessionSummary]:
        session_id = q.tags.get(attr.SESSION_ID)
        user_id = q.tags.get(attr.USER_ID)
        thread_id = q.tags.get(attr.THREAD_ID)
        if session_id is not None:
            ids = [session_id]
        elif user_id is not None:
            ids = await self.store.indexed_sessions("user", user_id, SEARCH_MAX_SESSIONS)
        elif thread_id is not None:
            ids = await self.store.indexed_sessions("thread", thread_id, SEARCH_MAX_SESSIONS)
        else:
            ids, _total = await self.store.recent_session_ids(limit=SEARCH_MAX_SESSIONS)
        summaries = await self.store.get_summaries(list(dict.fromkeys(ids)))
        out = []
        for summary in summaries:
            if summary is None:
                continue
            if user_id is not None and summary.user_id != user_id:
                continue
            if thread_id is not None and summary.thread_id != thread_id:
                continue
            if q.start_us is not None and summary.end_us and summary.end_us < q.start_us:
                continue
            if q.end_us is not None and summary.start_us > q.end_us:
                continue
            if q.service and q.service != SESSION_SERVICE and q.service not in summary.services:
                continue
            out.append(summary)
        out.sort(key=lambda s: (s.end_us, s.id), reverse=True)
        return out

    async def find_traces(self, q: TraceQuery) -> list[dict[str, Any]]:
        if q.trace_ids:
            found = [await self.trace(trace_id) for trace_id in q.trace_ids]
            return [t for t in found if t is not None]
        other_tags = {k: v for k, v in q.tags.items() if k not in SESSION_TAGS}
        results = await self._session_traces(q, other_tags)
        if q.service == SESSION_SERVICE or any(tag in q.tags for tag in SESSION_TAGS):
            return results  # traces without a session match neither
        parked = await self._parked_traces(q, other_tags)
        if not parked:
            return results
        merged = sorted(results + parked, key=lambda t: min((s["startTime"] for s in t["spans"]), default=0),
                        reverse=True)
        return merged[:q.limit]

    async def _session_traces(self, q: TraceQuery, other_tags: dict[str, str]) -> list[dict[str, Any]]:
        results: list[dict[str, Any]] = []
        for summary in await self._candidates(q):
            if len(results) >= q.limit:
                break
            data = await self.store.get_spans(summary.id)
            if data is None:
                continue
            logs = await self._span_logs(summary)
            if q.service == SESSION_SERVICE:
                trace = attach_logs(session_trace(summary, data), logs)
                root = trace["spans"][0]
                if self._session_matches(q, root, trace, other_tags):
                    results.append(trace)
                continue
            if attr.SESSION_ID in q.tags:  # the whole session as one trace comes first
                results.append(attach_logs(session_trace(summary, data), logs))
            ids = SessionIds.of(summary, summary.id)
            for builder in sorted(traces_to_jaeger(data, ids), key=lambda b: b.start_us, reverse=True):
                if len(results) >= q.limit:
                    break
                if self._trace_matches(q, builder, other_tags):
                    results.append(attach_logs(builder.to_json(), logs))
        return results[:q.limit]

    async def _parked_traces(self, q: TraceQuery, other_tags: dict[str, str]) -> list[dict[str, Any]]:
        """Matching traces among the :data:`SEARCH_MAX_PARKED` most recent ones without a
        session (a trace last written before ``start`` cannot have a span starting after it)."""
        since_ms = q.start_us / 1000 if q.start_us is not None else None
        trace_ids = await self.store.recent_parked_traces(SEARCH_MAX_PARKED, since_ms)
        results: list[dict[str, Any]] = []
        for trace_id, data in zip(trace_ids, await self.store.parked_spans_of(trace_ids)):
            for builder in traces_to_jaeger(data, None, only=trace_id):
                if self._trace_matches(q, builder, other_tags):  # with the records waiting too
                    records = span_logs(await self.store.logs.get_parked_logs(trace_id))
                    results.append(attach_logs(builder.to_json(), records))
            if len(results) >= q.limit:
                break
        return results

    @staticmethod
    def _trace_matches(q: TraceQuery, builder, other_tags: dict[str, str]) -> bool:
        """True when one span of the trace meets every filter of ``q`` (as in Jaeger)."""
        return any(q.span_matches(span, builder.processes[span["processID"]]["serviceName"],
                                  builder.processes[span["processID"]]["tags"], other_tags)
                   for span in builder.spans)

    async def _span_logs(self, summary: SessionSummary | None) -> dict:
        """The session's log records as Jaeger span logs (``logs.py``); none read when the
        session has no records."""
        if summary is None or not summary.log_count:
            return {}
        return span_logs(await self.store.logs.get_logs(summary.id) or LogsData())

    @staticmethod
    def _session_matches(q: TraceQuery, root: dict, trace: dict, other_tags: dict) -> bool:
        if q.operation and root["operationName"] != q.operation:
            return False
        if q.min_duration_us is not None and root["duration"] < q.min_duration_us:
            return False
        if q.max_duration_us is not None and root["duration"] > q.max_duration_us:
            return False
        if not other_tags:
            return True
        unbounded = TraceQuery(tags=other_tags)
        return any(unbounded.span_matches(span, "", trace["processes"][span["processID"]]["tags"], other_tags)
                   for span in trace["spans"])

