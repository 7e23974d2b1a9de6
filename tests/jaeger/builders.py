"""Hand-built OTLP for the Jaeger unit tests."""

from __future__ import annotations

from opentelemetry.proto.common.v1.common_pb2 import AnyValue, InstrumentationScope, KeyValue
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import Span

TRACE_A = bytes.fromhex("0af7651916cd43dd8448eb211c80319c")
TRACE_B = bytes.fromhex("4bf92f3577b34da6a3ce929d0e0e4736")
LINKED_TRACE = bytes.fromhex("11111111111111111111111111111111")
S = 1_000_000_000  # ns per second


def kv(key: str, value) -> KeyValue:
    """An attribute; the AnyValue field follows the Python type."""
    if isinstance(value, AnyValue):
        return KeyValue(key=key, value=value)
    if isinstance(value, bool):
        return KeyValue(key=key, value=AnyValue(bool_value=value))
    if isinstance(value, int):
        return KeyValue(key=key, value=AnyValue(int_value=value))
    if isinstance(value, float):
        return KeyValue(key=key, value=AnyValue(double_value=value))
    if isinstance(value, bytes):
        return KeyValue(key=key, value=AnyValue(bytes_value=value))
    return KeyValue(key=key, value=AnyValue(string_value=value))


def span(trace_id: bytes, span_id: int, name: str, start_s: float, end_s: float, parent: int | None = None,
         **fields) -> Span:
    """A span; ids are small integers, times are seconds since the epoch."""
    return Span(trace_id=trace_id, span_id=span_id.to_bytes(8, "big"), name=name,
                parent_span_id=parent.to_bytes(8, "big") if parent else b"",
                start_time_unix_nano=int(start_s * S), end_time_unix_nano=int(end_s * S), **fields)


def sid(n: int) -> str:
    """The Jaeger (hex) form of the span id ``n``."""
    return n.to_bytes(8, "big").hex()


def tags(jaeger_span: dict) -> dict:
    """A Jaeger span's tags as key -> (type, value)."""
    return {t["key"]: (t["type"], t["value"]) for t in jaeger_span["tags"]}


def keys(jaeger_span: dict) -> list[str]:
    """A Jaeger span's tag keys, in order."""
    return [t["key"] for t in jaeger_span["tags"]]


CHECKOUT = Resource(attributes=[kv("service.name", "checkout"), kv("host.name", "h1"), kv("process.pid", 42)])
NAMELESS = Resource(attributes=[kv("telemetry.sdk.language", "python")])
SCOPE = InstrumentationScope(name="agent-sdk", version="1.2.3")
