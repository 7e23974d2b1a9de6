"""Fixtures of the processor tests: a real TracerProvider with the SDK's in-memory exporter."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from opentelemetry.sdk.trace import ReadableSpan, Tracer, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from otel_sessions.processor import SessionSpanProcessor, propagation


@dataclass
class Traced:
    """A tracer whose finished spans land in ``exporter``."""

    provider: TracerProvider
    tracer: Tracer
    exporter: InMemorySpanExporter

    def spans(self) -> dict[str, ReadableSpan]:
        """Finished spans by name (names are unique within a test)."""
        return {span.name: span for span in self.exporter.get_finished_spans()}

    def attrs(self, name: str) -> dict[str, object]:
        return dict(self.spans()[name].attributes or {})


def make_traced(**processor_args: object) -> Traced:
    provider = TracerProvider()
    provider.add_span_processor(SessionSpanProcessor(**processor_args))  # type: ignore[arg-type]
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return Traced(provider, provider.get_tracer("tests"), exporter)


@pytest.fixture(autouse=True)
def _baggage_off() -> Iterator[None]:
    """Baggage is a process-wide switch: every test starts and ends with it unset (env default)."""
    propagation._enabled = None
    yield
    propagation._enabled = None


@pytest.fixture()
def traced() -> Iterator[Traced]:
    result = make_traced(baggage=False)
    yield result
    result.provider.shutdown()


@pytest.fixture()
def traced_baggage() -> Iterator[Traced]:
    result = make_traced(baggage=True)
    yield result
    result.provider.shutdown()
