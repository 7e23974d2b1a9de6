"""Jaeger-compatible query API under ``/api`` (what Grafana's Jaeger data source and Jaeger UI call).

Routes (all ``GET``, answers in Jaeger's JSON shape ``{"data", "total", "limit", "offset", "errors"}``):

* ``/api/services`` — service names seen within the retention, plus :data:`SESSION_SERVICE`;
* ``/api/services/{service}/operations`` — operation (span) names of a service;
* ``/api/operations?service=&spanKind=`` — ``[{"name", "spanKind"}]``;
* ``/api/traces?service=&operation=&tags=&tag=&start=&end=&lookback=&limit=&minDuration=&maxDuration=&traceID=``
  — search; ``tags`` is a JSON object (repeatable), ``tag`` is ``key:value`` (repeatable),
  ``start``/``end`` are µs since the epoch, durations are Go durations (``1.2s``, ``100ms``);
* ``/api/traces/{traceID}`` — one trace; 404 ``{"errors": [{"code": 404, "msg": "trace not found"}]}``;
* ``/api/sessions/{session_id}/trace`` — the session as one synthetic trace (below);
* ``/api/dependencies`` — empty (no dependency graph is kept).

Searching by ``session.id``, ``user.id`` or ``gen_ai.conversation.id`` selects sessions through
the store's indexes (the session itself, the user's and the thread's sessions); other tags,
the service, the operation, the time range and the durations must all hold for one span of a
trace, as in Jaeger. Without a session tag the search looks at the most recent sessions
(at most :data:`SEARCH_MAX_SESSIONS`). Spans whose trace never named a session are served by
trace id only.

**The synthetic session trace.** A session is also served as one trace whose id is the first
16 bytes of ``sha256(session id)`` (32 hex digits; :func:`session_trace_id`). Its root span,
named after the session (``session.name``, else ``session <id>``), belongs to the service
:data:`SESSION_SERVICE` and carries the session's figures as tags; every span of the session
is in it, with its trace's root spans re-parented under that root and the original trace id
in the tag ``otel_sessions.trace_id``. It is returned by ``/api/traces/{id}``, by
``/api/sessions/{session_id}/trace``, by a search with ``tags={"session.id": "..."}``, and by
any search with ``service=otel-sessions`` (one synthetic trace per matching session).

Spans of a known session are served with ``session.id``, ``gen_ai.conversation.id`` and
``user.id`` tags added where they lack them (as forwarding does). OTLP maps onto Jaeger as
Jaeger's own OTLP translator does: span kind as ``span.kind``, status as ``otel.status_code``
(and ``error=true``), scope as ``otel.scope.name``/``otel.scope.version``, events as logs (field
``event`` plus the attributes), links as ``FOLLOWS_FROM`` references, resources as processes.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import logging
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from opentelemetry.proto.trace.v1.trace_pb2 import TracesData

from otel_sessions.exporter.auth import BearerGuard
from otel_sessions.exporter.errors import BadRequest, http_error
from otel_sessions.exporter.ingest.ingestor import StoredBatch
from otel_sessions.exporter.store.service_index import ServiceIndex
from otel_sessions.exporter.store.sessions import SessionStore
from otel_sessions.exporter.store.summary import SessionSummary
from otel_sessions.processor import attributes as attr

__all__ = ["jaeger_routes", "JaegerIndex", "JaegerQuery", "session_trace_id", "session_root_span_id",
           "SESSION_SERVICE", "parse_go_duration"]

log = logging.getLogger(__name__)

#: Service name of the synthetic session traces' root spans.
SESSION_SERVICE = "otel-sessions"
#: Tag with the original trace id of a span inside a synthetic session trace.
ORIGINAL_TRACE_TAG = "otel_sessions.trace_id"
#: Sessions a search without a session tag looks at, newest first.
SEARCH_MAX_SESSIONS = 500
DEFAULT_LIMIT = 100
MAX_LIMIT = 1500
UNKNOWN_SERVICE = "unknown_service"
SESSION_TAGS = (attr.SESSION_ID, attr.USER_ID, attr.THREAD_ID)
_KINDS = ("", "internal", "server", "client", "producer", "consumer")
_STATUS = ("", "OK", "ERROR")


def session_trace_id(session_id: str) -> bytes:
    """The synthetic trace id of a session: the first 16 bytes of ``sha256(session id)``."""
    return hashlib.sha256(session_id.encode()).digest()[:16]


def session_root_span_id(session_id: str) -> bytes:
    """The span id of a synthetic session trace's root: bytes 16 to 24 of ``sha256(session id)``."""
    return hashlib.sha256(session_id.encode()).digest()[16:24]


# --- index hook: services, operations, synthetic trace ids -----------------------------------
class JaegerIndex:
    """``after_store`` hook keeping the service/operation lists and the synthetic trace map.

    Grouping already collected each request's services and (span kind, span name) pairs, so
    this reads no span. Writes are throttled per name (each is rewritten at most every
    ``refresh_s``) and run as background tasks (at most ``max_inflight`` at once), so ingest
    never waits for them; a write that fails is logged and made again with a later request."""

    def __init__(self, index: ServiceIndex, refresh_s: float = 60.0, max_inflight: int = 4,
                 cache_size: int = 50_000) -> None:
        self.index = index
        self.refresh_s = min(refresh_s, index.retention_ms / 4000)
        self.max_inflight = max_inflight
        self.cache_size = cache_size
        self._written: dict[Any, float] = {}
        self._tasks: set[asyncio.Task] = set()

    def _fresh(self, key: Any, now: float) -> bool:
        return now - self._written.get(key, -1e18) < self.refresh_s

    def __call__(self, stored: StoredBatch) -> None:
        if len(self._tasks) >= self.max_inflight:
            return  # names not written now are written with a later batch
        now = time.monotonic()
        operations: dict[str, set[str]] = {}
        for service, pairs in stored.operations.items():
            service = service or UNKNOWN_SERVICE
            for kind, name in pairs:
                member = f"{_KINDS[kind] if 0 <= kind < len(_KINDS) else ''}\0{name}"
                if not self._fresh((service, member), now):
                    operations.setdefault(service, set()).add(member)
        sessions = [sid for sid in stored.sessions if not self._fresh(sid, now)]
        if not operations and not sessions:
            return
        task = asyncio.ensure_future(self._write(operations, sessions, now))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _write(self, operations: dict[str, set[str]], sessions: list[str], now: float) -> None:
        try:
            await self.index.record(operations, {session_trace_id(sid): sid for sid in sessions},
                                    int(time.time() * 1000))
        except Exception as exc:  # the index is best effort: the next batch writes again
            log.warning("jaeger index write failed (made again with a later request): %s", exc)
            return
        if len(self._written) > self.cache_size:
            self._written.clear()
        for service, members in operations.items():
            for member in members:
                self._written[(service, member)] = now
        for session_id in sessions:
            self._written[session_id] = now

    async def stop(self) -> None:
        """Wait for index writes under way (they are short)."""
        if self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)


# --- OTLP -> Jaeger JSON ---------------------------------------------------------------------
def _value(value) -> tuple[str, Any]:
    kind = value.WhichOneof("value")
    if kind == "string_value":
        return "string", value.string_value
    if kind == "bool_value":
        return "bool", value.bool_value
    if kind == "int_value":
        return "int64", value.int_value
    if kind == "double_value":
        return "float64", value.double_value
    if kind == "bytes_value":
        return "binary", base64.b64encode(value.bytes_value).decode()
    if kind in ("array_value", "kvlist_value"):
        return "string", json.dumps(_plain(value), separators=(",", ":"))
    return "string", ""


def _plain(value) -> Any:
    kind = value.WhichOneof("value")
    if kind == "array_value":
        return [_plain(v) for v in value.array_value.values]
    if kind == "kvlist_value":
        return {kv.key: _plain(kv.value) for kv in value.kvlist_value.values}
    if kind == "bytes_value":
        return base64.b64encode(value.bytes_value).decode()
    return getattr(value, kind) if kind else None


def _kv(key: str, kind: str, value: Any) -> dict[str, Any]:
    return {"key": key, "type": kind, "value": value}


def _tags(attributes) -> list[dict[str, Any]]:
    out = []
    for kv in attributes:
        kind, value = _value(kv.value)
        out.append(_kv(kv.key, kind, value))
    return out


@dataclass
class _SessionIds:
    session_id: str
    thread_id: str | None = None
    user_id: str | None = None

    @classmethod
    def of(cls, summary: SessionSummary | None, session_id: str) -> _SessionIds:
        if summary is None:
            return cls(session_id)
        return cls(session_id, summary.thread_id, summary.user_id)


@dataclass
class _TraceBuilder:
    """Collects spans (converted to Jaeger JSON) and their processes for one trace."""

    trace_id: str
    spans: list[dict[str, Any]] = field(default_factory=list)
    processes: dict[str, dict[str, Any]] = field(default_factory=dict)
    _process_ids: dict[bytes, str] = field(default_factory=dict)

    def process_id(self, resource) -> str:
        key = resource.SerializeToString(deterministic=True)
        pid = self._process_ids.get(key)
        if pid is None:
            pid = self._process_ids[key] = f"p{len(self._process_ids) + 1}"
            service = UNKNOWN_SERVICE
            tags = []
            for kv in resource.attributes:
                if kv.key == attr.SERVICE_NAME:
                    service = kv.value.string_value or UNKNOWN_SERVICE
                else:
                    kind, value = _value(kv.value)
                    tags.append(_kv(kv.key, kind, value))
            self.processes[pid] = {"serviceName": service, "tags": tags}
        return pid

    def to_json(self) -> dict[str, Any]:
        return {"traceID": self.trace_id, "spans": self.spans, "processes": self.processes, "warnings": None}

    @property
    def start_us(self) -> int:
        return min((s["startTime"] for s in self.spans), default=0)


def span_to_jaeger(span, scope, process_id: str, ids: _SessionIds | None, trace_id: str | None = None) -> dict:
    """One OTLP span as a Jaeger JSON span (``trace_id`` overrides the span's own)."""
    own_trace = span.trace_id.hex()
    trace_hex = trace_id or own_trace
    references = []
    if span.parent_span_id:
        references.append({"refType": "CHILD_OF", "traceID": trace_hex, "spanID": span.parent_span_id.hex()})
    for link in span.links:
        references.append({"refType": "FOLLOWS_FROM", "traceID": link.trace_id.hex(), "spanID": link.span_id.hex()})
    tags = _tags(span.attributes)
    if ids is not None:
        present = {kv.key for kv in span.attributes}
        for key, value in ((attr.SESSION_ID, ids.session_id), (attr.THREAD_ID, ids.thread_id),
                           (attr.USER_ID, ids.user_id)):
            if value and key not in present:
                tags.append(_kv(key, "string", value))
    if scope.name:
        tags.append(_kv("otel.scope.name", "string", scope.name))
    if scope.version:
        tags.append(_kv("otel.scope.version", "string", scope.version))
    if 0 < span.kind < len(_KINDS):
        tags.append(_kv("span.kind", "string", _KINDS[span.kind]))
    if 0 < span.status.code < len(_STATUS):
        tags.append(_kv("otel.status_code", "string", _STATUS[span.status.code]))
        if span.status.code == 2:
            tags.append(_kv("error", "bool", True))
    if span.status.message:
        tags.append(_kv("otel.status_description", "string", span.status.message))
    if span.trace_state:
        tags.append(_kv("w3c.tracestate", "string", span.trace_state))
    if trace_id is not None and trace_id != own_trace:
        tags.append(_kv(ORIGINAL_TRACE_TAG, "string", own_trace))
    logs = [
        {"timestamp": event.time_unix_nano // 1000,
         "fields": [_kv("event", "string", event.name), *_tags(event.attributes)]}
        for event in span.events
    ]
    start = span.start_time_unix_nano // 1000
    return {
        "traceID": trace_hex,
        "spanID": span.span_id.hex(),
        "operationName": span.name,
        "references": references,
        "startTime": start,
        "duration": max(0, span.end_time_unix_nano // 1000 - start),
        "tags": tags,
        "logs": logs,
        "processID": process_id,
        "warnings": None,
    }


def _flatten(data: TracesData) -> Iterable[tuple[Any, Any, Any]]:
    for rs in data.resource_spans:
        for ss in rs.scope_spans:
            for span in ss.spans:
                yield rs.resource, ss.scope, span


def traces_to_jaeger(data: TracesData, ids: _SessionIds | None, only: bytes | None = None) -> list[_TraceBuilder]:
    """Group ``data`` by trace and convert (``only``: keep that trace id only)."""
    traces: dict[bytes, _TraceBuilder] = {}
    for resource, scope, span in _flatten(data):
        if only is not None and span.trace_id != only:
            continue
        builder = traces.get(span.trace_id)
        if builder is None:
            builder = traces[span.trace_id] = _TraceBuilder(span.trace_id.hex())
        builder.spans.append(span_to_jaeger(span, scope, builder.process_id(resource), ids))
    return list(traces.values())


def session_trace(summary: SessionSummary, data: TracesData) -> dict[str, Any]:
    """The synthetic trace of a session: every span under one root named after the session."""
    session_id = summary.id
    trace_hex = session_trace_id(session_id).hex()
    root_id = session_root_span_id(session_id).hex()
    ids = _SessionIds.of(summary, session_id)
    builder = _TraceBuilder(trace_hex)
    root_process = builder.process_id(_session_resource())
    present = {(span.trace_id, span.span_id) for _r, _s, span in _flatten(data)}
    start = end = None
    for resource, scope, span in _flatten(data):
        converted = span_to_jaeger(span, scope, builder.process_id(resource), ids, trace_id=trace_hex)
        if not span.parent_span_id or (span.trace_id, span.parent_span_id) not in present:
            refs = [r for r in converted["references"] if r["refType"] != "CHILD_OF"]
            converted["references"] = [{"refType": "CHILD_OF", "traceID": trace_hex, "spanID": root_id}, *refs]
        builder.spans.append(converted)
        s, e = converted["startTime"], converted["startTime"] + converted["duration"]
        start = s if start is None else min(start, s)
        end = e if end is None else max(end, e)
    if start is None:
        start, end = int(summary.start_us), int(summary.end_us)
    tags = [_kv(attr.SESSION_ID, "string", session_id)]
    for key, value in ((attr.SESSION_NAME, summary.name), (attr.USER_ID, summary.user_id),
                       (attr.THREAD_ID, summary.thread_id)):
        if value:
            tags.append(_kv(key, "string", value))
    tags += [
        _kv("session.status", "string", summary.status),
        _kv("session.trace_count", "int64", summary.trace_count),
        _kv("session.span_count", "int64", summary.span_count),
        _kv("session.error_count", "int64", summary.error_count),
        _kv("gen_ai.usage.input_tokens", "int64", summary.input_tokens),
        _kv("gen_ai.usage.output_tokens", "int64", summary.output_tokens),
        _kv("session.cost_usd", "float64", round(summary.cost_usd, 10)),
    ]
    if summary.models:
        tags.append(_kv("session.models", "string", ",".join(summary.models)))
    if summary.error_count:
        tags.append(_kv("error", "bool", True))
    root = {
        "traceID": trace_hex,
        "spanID": root_id,
        "operationName": summary.name or f"session {session_id}",
        "references": [],
        "startTime": start,
        "duration": max(0, (end or start) - start),
        "tags": tags,
        "logs": [],
        "processID": root_process,
        "warnings": None,
    }
    builder.spans.insert(0, root)
    return builder.to_json()


def _session_resource():
    from opentelemetry.proto.resource.v1.resource_pb2 import Resource

    resource = Resource()
    kv = resource.attributes.add()
    kv.key, kv.value.string_value = attr.SERVICE_NAME, SESSION_SERVICE
    kv = resource.attributes.add()
    kv.key, kv.value.bool_value = "otel_sessions.synthetic", True
    return resource


# --- query parameters ------------------------------------------------------------------------
class BadQuery(BadRequest):
    """A query parameter Jaeger would refuse (HTTP 400)."""


_GO_DURATION = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)")
_UNIT_US = {"ns": 0.001, "us": 1.0, "µs": 1.0, "μs": 1.0, "ms": 1000.0, "s": 1e6, "m": 60e6, "h": 3600e6}


def parse_go_duration(text: str) -> float:
    """A Go duration (``1.2s``, ``100ms``, ``1m30s``) in microseconds."""
    text = text.strip()
    pos, total = 0, 0.0
    for match in _GO_DURATION.finditer(text):
        if match.start() != pos:
            break
        total += float(match.group(1)) * _UNIT_US[match.group(2)]
        pos = match.end()
    if pos != len(text) or not text:
        raise BadQuery(f"cannot parse duration {text!r}: use Go durations such as 1.2s or 100ms")
    return total


@dataclass
class TraceQuery:
    service: str | None = None
    operation: str | None = None
    tags: dict[str, str] = field(default_factory=dict)
    start_us: int | None = None
    end_us: int | None = None
    limit: int = DEFAULT_LIMIT
    min_duration_us: float | None = None
    max_duration_us: float | None = None
    trace_ids: list[bytes] = field(default_factory=list)

    @classmethod
    def parse(cls, params) -> TraceQuery:
        q = cls(service=params.get("service") or None, operation=params.get("operation") or None)
        for raw in params.getall("tags", []):
            if not raw.strip():
                continue
            try:
                tags = json.loads(raw)
            except ValueError as exc:
                raise BadQuery(f"malformed 'tags' parameter, cannot unmarshal JSON: {exc}") from None
            if not isinstance(tags, dict):
                raise BadQuery("malformed 'tags' parameter: expecting a JSON object")
            for key, value in tags.items():
                q.tags[str(key)] = _tag_text(value)
        for raw in params.getall("tag", []):
            key, sep, value = raw.partition(":")
            if not sep:
                raise BadQuery(f"malformed 'tag' parameter, expecting key:value, got {raw!r}")
            q.tags[key] = value
        for name in ("start", "end"):
            raw = params.get(name)
            if raw:
                try:
                    setattr(q, f"{name}_us", int(raw))
                except ValueError:
                    raise BadQuery(f"cannot parse '{name}' {raw!r}: expecting microseconds since the epoch") from None
        lookback = params.get("lookback")
        if q.start_us is None and lookback and lookback != "custom":
            end = q.end_us if q.end_us is not None else int(time.time() * 1e6)
            q.start_us = int(end - parse_go_duration(lookback))
        raw_limit = params.get("limit")
        if raw_limit:
            try:
                q.limit = int(raw_limit)
            except ValueError:
                raise BadQuery(f"cannot parse 'limit' {raw_limit!r}") from None
            if q.limit <= 0:
                q.limit = DEFAULT_LIMIT
        q.limit = min(q.limit, MAX_LIMIT)
        for name in ("minDuration", "maxDuration"):
            raw = params.get(name)
            if raw:
                value = parse_go_duration(raw)
                if name == "minDuration":
                    q.min_duration_us = value
                else:
                    q.max_duration_us = value
        if q.min_duration_us and q.max_duration_us and q.max_duration_us < q.min_duration_us:
            raise BadQuery("'maxDuration' should be greater than 'minDuration'")
        if q.operation and not q.service:
            raise BadQuery("parameter 'service' is required when 'operation' is given")
        for raw in params.getall("traceID", []):
            q.trace_ids.append(parse_trace_id(raw))
        return q

    def span_matches(self, span: dict[str, Any], service: str, process_tags: list, other_tags: dict) -> bool:
        if self.service and self.service != service:
            return False
        if self.operation and span["operationName"] != self.operation:
            return False
        duration = span["duration"]
        if self.min_duration_us is not None and duration < self.min_duration_us:
            return False
        if self.max_duration_us is not None and duration > self.max_duration_us:
            return False
        start = span["startTime"]
        if self.start_us is not None and start < self.start_us:
            return False
        if self.end_us is not None and start > self.end_us:
            return False
        if other_tags:
            values: dict[str, set[str]] = {}
            for kv in (*span["tags"], *process_tags, *(f for log_ in span["logs"] for f in log_["fields"])):
                values.setdefault(kv["key"], set()).add(_tag_text(kv["value"]))
            for key, wanted in other_tags.items():
                if wanted not in values.get(key, ()):
                    return False
        return True


def _tag_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def parse_trace_id(text: str) -> bytes:
    """A trace id in hex (Jaeger may drop leading zeros): 16 bytes."""
    text = text.strip().lower()
    if not 0 < len(text) <= 32 or not re.fullmatch(r"[0-9a-f]+", text):
        raise BadQuery(f"cannot parse traceID {text!r}: expecting up to 32 hex digits")
    return bytes.fromhex(text.rjust(32, "0"))


# --- reads -----------------------------------------------------------------------------------
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
        return session_trace(summary, data)

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
                built = traces_to_jaeger(data, _SessionIds.of(summary, session_id), only=trace_id)
                if built:
                    return built[0].to_json()
        parked = await self.store.get_parked_spans(trace_id)
        built = traces_to_jaeger(parked, None, only=trace_id)
        if built:
            return built[0].to_json()
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
        results: list[dict[str, Any]] = []
        for summary in await self._candidates(q):
            if len(results) >= q.limit:
                break
            data = await self.store.get_spans(summary.id)
            if data is None:
                continue
            if q.service == SESSION_SERVICE:
                trace = session_trace(summary, data)
                root = trace["spans"][0]
                if self._session_matches(q, root, trace, other_tags):
                    results.append(trace)
                continue
            if attr.SESSION_ID in q.tags:  # the whole session as one trace comes first
                results.append(session_trace(summary, data))
            ids = _SessionIds.of(summary, summary.id)
            for builder in sorted(traces_to_jaeger(data, ids), key=lambda b: b.start_us, reverse=True):
                if len(results) >= q.limit:
                    break
                if any(q.span_matches(span, builder.processes[span["processID"]]["serviceName"],
                                      builder.processes[span["processID"]]["tags"], other_tags)
                       for span in builder.spans):
                    results.append(builder.to_json())
        return results[:q.limit]

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


# --- routes ----------------------------------------------------------------------------------
def _response(data: Any, status: int = 200, errors: list | None = None, total: int | None = None) -> web.Response:
    if total is None:
        total = len(data) if isinstance(data, list) else 0
    body = {"data": data, "total": total, "limit": 0, "offset": 0, "errors": errors}
    return web.json_response(body, status=status)


def _error(status: int, message: str, trace_id: str | None = None) -> web.Response:
    error: dict[str, Any] = {"code": status, "msg": message}
    if trace_id:
        error["traceID"] = trace_id
    return _response(None, status=status, errors=[error])


def jaeger_routes(guard: BearerGuard, store: SessionStore, index: ServiceIndex) -> Callable[[web.Application], None]:
    """Add the ``/api`` routes to the HTTP application (``extra_routes`` of ``create_app``).
    Errors come from the error table, in Jaeger's error shape."""

    def render(status: int, _code, message: str, _exc: BaseException) -> web.Response:
        return _error(status, message)

    def guarded(handler):
        async def wrapper(request: web.Request) -> web.StreamResponse:
            try:
                guard.check(request.headers.get("Authorization"))
                return await handler(request, JaegerQuery(store, index))
            except Exception as exc:
                return http_error(exc, f"GET {request.path}", render)

        return wrapper

    async def services(_request: web.Request, query: JaegerQuery) -> web.Response:
        return _response(await query.services())

    async def service_operations(request: web.Request, query: JaegerQuery) -> web.Response:
        operations = await query.operations(request.match_info["service"])
        return _response(sorted({op["name"] for op in operations}))

    async def operations(request: web.Request, query: JaegerQuery) -> web.Response:
        service = request.query.get("service")
        if not service:
            raise BadQuery("parameter 'service' is required")
        return _response(await query.operations(service, request.query.get("spanKind") or None))

    async def traces(request: web.Request, query: JaegerQuery) -> web.Response:
        q = TraceQuery.parse(request.query)
        found = await query.find_traces(q)
        errors = None
        if q.trace_ids and len(found) < len(q.trace_ids):
            have = {t["traceID"] for t in found}
            errors = [{"msg": "trace not found", "traceID": t.hex()} for t in q.trace_ids if t.hex() not in have]
        return _response(found, errors=errors)

    async def trace(request: web.Request, query: JaegerQuery) -> web.Response:
        trace_id = parse_trace_id(request.match_info["trace_id"])
        found = await query.trace(trace_id)
        if found is None:
            return _error(404, "trace not found")
        return _response([found])

    async def session(request: web.Request, query: JaegerQuery) -> web.Response:
        found = await query.session_trace(request.match_info["session_id"])
        if found is None:
            return _error(404, "session not found")
        return _response([found])

    async def dependencies(_request: web.Request, _query: JaegerQuery) -> web.Response:
        return _response([])

    def add(app: web.Application) -> None:
        app.router.add_get("/api/services", guarded(services))
        app.router.add_get("/api/services/{service}/operations", guarded(service_operations))
        app.router.add_get("/api/operations", guarded(operations))
        app.router.add_get("/api/traces", guarded(traces))
        app.router.add_get("/api/traces/{trace_id}", guarded(trace))
        app.router.add_get("/api/sessions/{session_id}/trace", guarded(session))
        app.router.add_get("/api/dependencies", guarded(dependencies))

    return add
