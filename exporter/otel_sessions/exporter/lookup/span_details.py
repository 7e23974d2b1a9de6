"""One stored span in full, as plain JSON (``GET /v1/sessions/{id}/spans/{span_id}``).

:func:`find_spans` finds a span by id (and trace id) in a session's ``TracesData``;
:func:`span_details` turns it, with its resource and scope, into the ``SpanDetails`` shape of
``docs/interface.md``: ids as lowercase hex, times RFC 3339 (µs, ``Z``), ``kind`` and
``status.code`` as lowercase OTLP words, attribute values as ``otlp_values.py`` reads them,
and ``exception`` from the span's first ``exception`` event (OTel semantic conventions:
``exception.type``, ``exception.message``, ``exception.stacktrace``).
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from opentelemetry.proto.trace.v1.trace_pb2 import TracesData

from otel_sessions.exporter.lookup.otlp_values import attributes_dict

__all__ = ["find_spans", "span_details", "SPAN_KINDS", "STATUS_CODES"]

SPAN_KINDS = ("unspecified", "internal", "server", "client", "producer", "consumer")
STATUS_CODES = ("unset", "ok", "error")
_ZERO_SPAN = bytes(8)


def _iso(nanos: int) -> str | None:
    if not nanos:
        return None
    moment = datetime.fromtimestamp(nanos // 1000 / 1e6, tz=timezone.utc)
    return moment.isoformat(timespec="microseconds").replace("+00:00", "Z")


def find_spans(data: TracesData, span_id: bytes, trace_id: bytes | None = None) -> list[tuple[Any, Any, Any]]:
    """(resource, scope, span) of every span with ``span_id`` (and ``trace_id`` when given),
    each trace and span id once."""
    found = []
    seen = set()
    for rs in data.resource_spans:
        for ss in rs.scope_spans:
            for span in ss.spans:
                if span.span_id != span_id or (trace_id is not None and span.trace_id != trace_id):
                    continue
                if span.trace_id not in seen:
                    seen.add(span.trace_id)
                    found.append((rs.resource, ss.scope, span))
    return found


def span_details(resource, scope, span, session_id: str | None = None) -> dict[str, Any]:
    """The ``SpanDetails`` JSON of one span."""
    events = []
    exception = None
    for event in span.events:
        attributes = attributes_dict(event.attributes)
        events.append({"name": event.name, "time": _iso(event.time_unix_nano), "attributes": attributes})
        if exception is None and event.name == "exception":
            exception = {key: _text(attributes.get(f"exception.{key}"))
                         for key in ("type", "message", "stacktrace")}
    parent = span.parent_span_id
    start, end = span.start_time_unix_nano, span.end_time_unix_nano
    return {
        "session_id": session_id,
        "trace_id": span.trace_id.hex(),
        "span_id": span.span_id.hex(),
        "parent_span_id": parent.hex() if parent and parent != _ZERO_SPAN else None,
        "name": span.name,
        "kind": SPAN_KINDS[span.kind] if 0 <= span.kind < len(SPAN_KINDS) else "unspecified",
        "start_time": _iso(start),
        "end_time": _iso(end),
        "duration_ms": round(max(0, end - start) / 1e6, 3),
        "status": {"code": STATUS_CODES[span.status.code] if 0 <= span.status.code < 3 else "unset",
                   "message": span.status.message or None},
        "attributes": attributes_dict(span.attributes),
        "resource": attributes_dict(resource.attributes),
        "scope": {"name": scope.name or None, "version": scope.version or None},
        "events": events,
        "exception": exception,
        "links": [{"trace_id": link.trace_id.hex(), "span_id": link.span_id.hex(),
                   "attributes": attributes_dict(link.attributes)} for link in span.links],
        "trace_state": span.trace_state or None,
    }


def _text(value: Any) -> str | None:
    return None if value is None else str(value)
