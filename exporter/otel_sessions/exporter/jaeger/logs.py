"""A session's log records as Jaeger span logs.

Jaeger has no log records of its own: a span's ``logs`` (timestamped field lists) are where
Jaeger UI and Grafana show what happened during a span, which is where the OTLP span events
already go (``translate.py``). Each stored log record of a session that names a span of the
trace being served (its ``trace_id`` and ``span_id``) becomes one more entry of that span's
``logs``, in time order with the span's events::

    {"timestamp": µs, "fields": [{"key": "event", "value": event_name or "log"},
                                 {"key": "message", "value": the record's message},
                                 {"key": "level", "value": "ERROR"},   # when it has a severity
                                 ...the record's attributes]}

Records of no span, or of spans the trace does not hold, are not shown there (they are in the
session's logs: ``GET /v1/sessions/{id}/logs``).
"""

from __future__ import annotations

from typing import Any

from opentelemetry.proto.logs.v1.logs_pb2 import LogsData

from otel_sessions.exporter.jaeger.translate import ORIGINAL_TRACE_TAG, _tags
from otel_sessions.exporter.store.logs import record_message

__all__ = ["span_logs", "attach_logs", "LOG_EVENT"]

#: The ``event`` field of a log record without an event name.
LOG_EVENT = "log"
_LEVELS = ((21, "FATAL"), (17, "ERROR"), (13, "WARN"), (9, "INFO"), (5, "DEBUG"), (1, "TRACE"))


def _level(record) -> str | None:
    if record.severity_text:
        return record.severity_text
    for low, name in _LEVELS:
        if record.severity_number >= low:
            return name
    return None


def span_logs(data: LogsData) -> dict[tuple[str, str], list[dict[str, Any]]]:
    """Jaeger log entries of the records of ``data`` that name a span, by (trace id hex,
    span id hex)."""
    out: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for rl in data.resource_logs:
        for sl in rl.scope_logs:
            for record in sl.log_records:
                if len(record.trace_id) != 16 or len(record.span_id) != 8:
                    continue
                fields = [{"key": "event", "type": "string", "value": record.event_name or LOG_EVENT},
                          {"key": "message", "type": "string", "value": record_message(record)}]
                level = _level(record)
                if level:
                    fields.append({"key": "level", "type": "string", "value": level})
                fields += _tags(record.attributes)
                nanos = record.time_unix_nano or record.observed_time_unix_nano
                out.setdefault((record.trace_id.hex(), record.span_id.hex()), []).append(
                    {"timestamp": nanos // 1000, "fields": fields})
    return out


def attach_logs(trace: dict[str, Any], by_span: dict[tuple[str, str], list[dict[str, Any]]]) -> dict[str, Any]:
    """Add the entries of ``by_span`` to the spans of the Jaeger ``trace`` they name (a span of
    a synthetic session trace by its original trace id); returns ``trace``."""
    if not by_span:
        return trace
    for span in trace["spans"]:
        trace_hex = next((t["value"] for t in span["tags"] if t["key"] == ORIGINAL_TRACE_TAG), span["traceID"])
        entries = by_span.get((trace_hex, span["spanID"]))
        if entries:
            span["logs"] = sorted([*span["logs"], *entries], key=lambda entry: entry["timestamp"])
    return trace
