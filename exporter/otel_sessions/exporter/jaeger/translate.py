"""OTLP spans as Jaeger JSON, and a session as one synthetic Jaeger trace.

OTLP maps onto Jaeger as Jaeger's own OTLP translator does: span kind as ``span.kind``,
status as ``otel.status_code`` (and ``error=true``), scope as
``otel.scope.name``/``otel.scope.version``, events as logs (field ``event`` plus the
attributes), links as ``FOLLOWS_FROM`` references, resources as processes. A parent span id
of 8 zero bytes is an invalid id, no parent (W3C Trace Context): such a span is a root, with
no ``CHILD_OF`` reference, as the store counts it. Spans of a known
session are served with ``session.id``, ``gen_ai.conversation.id`` and ``user.id`` tags
added where they lack them (as forwarding does).

**The synthetic session trace.** A session is also served as one trace whose id is the first
16 bytes of ``sha256(session id)`` (32 hex digits; :func:`session_trace_id`). Its root span,
named after the session (``session.name``, else ``session <id>``), belongs to the service
:data:`SESSION_SERVICE` and carries the session's figures as tags; every span of the session
is in it, with its trace's root spans re-parented under that root and the original trace id
in the tag ``otel_sessions.trace_id`` (:data:`ORIGINAL_TRACE_TAG`). It is returned by
``/api/traces/{id}``, by ``/api/sessions/{session_id}/trace``, by a search with
``tags={"session.id": "..."}``, and by any search with ``service=otel-sessions`` (one
synthetic trace per matching session).
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from opentelemetry.proto.trace.v1.trace_pb2 import TracesData

from otel_sessions.exporter.store.summary import SessionSummary
from otel_sessions.processor import attributes as attr

__all__ = ["SESSION_SERVICE", "ORIGINAL_TRACE_TAG", "UNKNOWN_SERVICE", "SPAN_KINDS", "SessionIds",
           "TraceBuilder", "session_trace_id", "session_root_span_id", "span_to_jaeger", "traces_to_jaeger",
           "session_trace"]

#: Service name of the synthetic session traces' root spans.
SESSION_SERVICE = "otel-sessions"
#: Tag with the original trace id of a span inside a synthetic session trace.
ORIGINAL_TRACE_TAG = "otel_sessions.trace_id"
#: Service name of a resource without ``service.name``.
UNKNOWN_SERVICE = "unknown_service"
#: Jaeger's ``span.kind`` values, indexed by OTLP ``Span.SpanKind`` ("" for unspecified).
SPAN_KINDS = ("", "internal", "server", "client", "producer", "consumer")
_STATUS = ("", "OK", "ERROR")
_ZERO_SPAN = bytes(8)


def _parent(span) -> bytes:
    """The span's parent span id; b"" for a root (no parent id, or the invalid all-zero one)."""
    parent = span.parent_span_id
    return b"" if parent == _ZERO_SPAN else parent


def session_trace_id(session_id: str) -> bytes:
    """The synthetic trace id of a session: the first 16 bytes of ``sha256(session id)``."""
    return hashlib.sha256(session_id.encode()).digest()[:16]


def session_root_span_id(session_id: str) -> bytes:
    """The span id of a synthetic session trace's root: bytes 16 to 24 of ``sha256(session id)``."""
    return hashlib.sha256(session_id.encode()).digest()[16:24]


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
class SessionIds:
    """The ids of a known session, added to its spans where they lack them."""

    session_id: str
    thread_id: str | None = None
    user_id: str | None = None

    @classmethod
    def of(cls, summary: SessionSummary | None, session_id: str) -> SessionIds:
        if summary is None:
            return cls(session_id)
        return cls(session_id, summary.thread_id, summary.user_id)


@dataclass
class TraceBuilder:
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


def span_to_jaeger(span, scope, process_id: str, ids: SessionIds | None, trace_id: str | None = None) -> dict:
    """One OTLP span as a Jaeger JSON span (``trace_id`` overrides the span's own)."""
    own_trace = span.trace_id.hex()
    trace_hex = trace_id or own_trace
    references = []
    parent = _parent(span)
    if parent:
        references.append({"refType": "CHILD_OF", "traceID": trace_hex, "spanID": parent.hex()})
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
    if 0 < span.kind < len(SPAN_KINDS):
        tags.append(_kv("span.kind", "string", SPAN_KINDS[span.kind]))
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


def traces_to_jaeger(data: TracesData, ids: SessionIds | None, only: bytes | None = None) -> list[TraceBuilder]:
    """Group ``data`` by trace and convert (``only``: keep that trace id only)."""
    traces: dict[bytes, TraceBuilder] = {}
    for resource, scope, span in _flatten(data):
        if only is not None and span.trace_id != only:
            continue
        builder = traces.get(span.trace_id)
        if builder is None:
            builder = traces[span.trace_id] = TraceBuilder(span.trace_id.hex())
        builder.spans.append(span_to_jaeger(span, scope, builder.process_id(resource), ids))
    return list(traces.values())


def session_trace(summary: SessionSummary, data: TracesData) -> dict[str, Any]:
    """The synthetic trace of a session: every span under one root named after the session."""
    session_id = summary.id
    trace_hex = session_trace_id(session_id).hex()
    root_id = session_root_span_id(session_id).hex()
    ids = SessionIds.of(summary, session_id)
    builder = TraceBuilder(trace_hex)
    root_process = builder.process_id(_session_resource())
    present = {(span.trace_id, span.span_id) for _r, _s, span in _flatten(data)}
    start = end = None
    for resource, scope, span in _flatten(data):
        converted = span_to_jaeger(span, scope, builder.process_id(resource), ids, trace_id=trace_hex)
        parent = _parent(span)
        if not parent or (span.trace_id, parent) not in present:
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
