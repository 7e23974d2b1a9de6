"""Span factories and waits shared by the existing-stacks tests."""

from __future__ import annotations

import time

from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client import REGISTRY


def tracer(service_name: str = "test-app"):
    """A real tracer whose finished spans are kept in memory (send them with :func:`send`)."""
    memory = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": service_name}))
    provider.add_span_processor(SimpleSpanProcessor(memory))
    return provider.get_tracer("tests.stacks"), memory


def send(endpoint: str, spans) -> None:
    """Export ``spans`` with the stock OTLP/gRPC exporter (one request)."""
    from opentelemetry.sdk.trace.export import SpanExportResult

    assert GrpcExporter(endpoint=endpoint, insecure=True).export(list(spans)) == SpanExportResult.SUCCESS


def wait_until(condition, timeout: float = 20.0, message: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {message}")


def metric(name: str, **labels) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def attributes(span) -> dict:
    """An OTLP span's attributes as a plain dict (string, int, bool and double values)."""
    out = {}
    for kv in span.attributes:
        kind = kv.value.WhichOneof("value")
        out[kv.key] = getattr(kv.value, kind) if kind else None
    return out
