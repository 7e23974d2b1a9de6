"""Hand-built OTLP spans and log records in the shapes instrumentations record (for transcript tests)."""

from __future__ import annotations

import json
from typing import Any

from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import Span, TracesData

TRACE = bytes.fromhex("0af7651916cd43dd8448eb211c80319c")
BASE_NS = 1_714_566_896_000_000_000  # 2024-05-01T12:34:56Z


def any_value(value: Any) -> AnyValue:
    """A Python value as an AnyValue (dicts as kvlists, lists as arrays)."""
    if isinstance(value, AnyValue):
        return value
    if isinstance(value, bool):
        return AnyValue(bool_value=value)
    if isinstance(value, int):
        return AnyValue(int_value=value)
    if isinstance(value, float):
        return AnyValue(double_value=value)
    if isinstance(value, bytes):
        return AnyValue(bytes_value=value)
    if isinstance(value, dict):
        out = AnyValue()
        out.kvlist_value.values.extend(KeyValue(key=k, value=any_value(v)) for k, v in value.items())
        return out
    if isinstance(value, (list, tuple)):
        out = AnyValue()
        out.array_value.values.extend(any_value(v) for v in value)
        return out
    return AnyValue(string_value=str(value))


def attributes(values: dict[str, Any]) -> list[KeyValue]:
    return [KeyValue(key=k, value=any_value(v)) for k, v in values.items()]


def span_id(n: int) -> bytes:
    return n.to_bytes(8, "big")


class Spans:
    """A ``TracesData`` being built: ``add(n, start_ms, end_ms, parent=m, attrs...)``."""

    def __init__(self, resource: dict[str, Any] | None = None) -> None:
        self.data = TracesData()
        rs = self.data.resource_spans.add()
        rs.resource.attributes.extend(attributes(resource or {"service.name": "app"}))
        self.scope = rs.scope_spans.add()
        self.scope.scope.name = "tests"

    def add(self, n: int, start_ms: float, end_ms: float, *, parent: int | None = None, name: str = "span",
            trace: bytes = TRACE, events: list[tuple[str, dict]] | None = None, **attrs: Any) -> Span:
        """A span; attribute keys use ``__`` for dots; values that are dicts or lists of dicts are
        JSON text unless wrapped in :class:`Raw`."""
        span = self.scope.spans.add(trace_id=trace, span_id=span_id(n), name=name,
                                    start_time_unix_nano=BASE_NS + int(start_ms * 1e6),
                                    end_time_unix_nano=BASE_NS + int(end_ms * 1e6))
        if parent is not None:
            span.parent_span_id = span_id(parent)
        for key, value in attrs.items():
            if isinstance(value, Raw):
                value = value.value
            elif isinstance(value, (dict, list)):
                value = json.dumps(value)
            span.attributes.append(KeyValue(key=key.replace("__", "."), value=any_value(value)))
        for event_name, event_attrs in events or ():
            event = span.events.add(name=event_name, time_unix_nano=span.start_time_unix_nano)
            event.attributes.extend(attributes(event_attrs))
        return span


class Raw:
    """An attribute value set as it is (a structured AnyValue, not JSON text)."""

    def __init__(self, value: Any) -> None:
        self.value = value


def log_record(name: str, body: Any = None, *, at_ms: float = 0, span: int | None = None, trace: bytes = TRACE,
               in_attribute: bool = False, **attrs: Any) -> tuple[Resource, LogRecord]:
    """A GenAI event as a log record: the name in ``event_name`` (or the ``event.name``
    attribute with ``in_attribute``), the body an AnyValue map."""
    record = LogRecord(time_unix_nano=BASE_NS + int(at_ms * 1e6), trace_id=trace)
    if span is not None:
        record.span_id = span_id(span)
    if in_attribute:
        record.attributes.append(KeyValue(key="event.name", value=any_value(name)))
    else:
        record.event_name = name
    if body is not None:
        record.body.CopyFrom(any_value(body))
    record.attributes.extend(attributes({k.replace("__", "."): v for k, v in attrs.items()}))
    return Resource(attributes=attributes({"service.name": "app"})), record


def genai_message(role: str, text: str | None = None, *, calls=(), result=None, finish=None) -> dict:
    """A message in the GenAI semantic conventions' JSON schema."""
    parts: list[dict] = []
    if text is not None:
        parts.append({"type": "text", "content": text})
    for call_id, name, arguments in calls:
        parts.append({"type": "tool_call", "id": call_id, "name": name, "arguments": arguments})
    if result is not None:
        parts.append({"type": "tool_call_response", "id": result[0], "response": result[1]})
    message = {"role": role, "parts": parts}
    if finish:
        message["finish_reason"] = finish
    return message


def summary(messages: list[dict]) -> list[tuple]:
    """(role, text, tool call ids, tool_call_id) of each message: what the tests compare."""
    out = []
    for m in messages:
        text = " ".join(p.get("text", f"<{p.get('type')}>") for p in m["content"])
        out.append((m["role"], text, tuple(c["id"] for c in m["tool_calls"]), m["tool_call_id"]))
    return out
