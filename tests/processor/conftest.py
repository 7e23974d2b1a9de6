"""Fixtures of the processor tests: a real TracerProvider with the SDK's in-memory exporter, and
a real LoggerProvider with the SDK's in-memory log exporter behind a stdlib logger."""

from __future__ import annotations

import itertools
import logging
import warnings
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler
from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor
from opentelemetry.sdk.trace import ReadableSpan, Tracer, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from otel_sessions.processor import SessionLogProcessor, SessionSpanProcessor, propagation

try:  # the SDK's in-memory log exporter, by its current name (the old one warns from SDK 1.3x on)
    from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter as InMemoryLogExporter
except ImportError:  # pragma: no cover - older SDKs
    from opentelemetry.sdk._logs.export import InMemoryLogExporter  # type: ignore[no-redef]


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


@dataclass
class Logged:
    """A stdlib ``logger`` whose records reach ``provider`` (SessionLogProcessor first, then an
    in-memory exporter) through the SDK's ``LoggingHandler``."""

    provider: LoggerProvider
    exporter: InMemoryLogExporter
    logger: logging.Logger

    def attrs(self, body: str) -> dict[str, object]:
        """Attributes of the one exported record with ``body`` (bodies are unique within a test)."""
        (found,) = [r.log_record for r in self.exporter.get_finished_logs() if r.log_record.body == body]
        return dict(found.attributes or {})


_logger_names = itertools.count()


def otel_handler(provider: LoggerProvider) -> LoggingHandler:
    """The SDK's ``LoggingHandler`` into ``provider`` (newer SDKs deprecate it; it still works)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return LoggingHandler(logger_provider=provider)


def make_logged() -> Logged:
    provider = LoggerProvider()
    provider.add_log_record_processor(SessionLogProcessor())
    exporter = InMemoryLogExporter()
    provider.add_log_record_processor(SimpleLogRecordProcessor(exporter))
    handler = otel_handler(provider)
    logger = logging.getLogger(f"tests.logged.{next(_logger_names)}")
    logger.setLevel(logging.INFO)
    logger.propagate = False
    logger.addHandler(handler)
    return Logged(provider, exporter, logger)


@pytest.fixture()
def logged() -> Iterator[Logged]:
    result = make_logged()
    yield result
    result.logger.handlers.clear()
    result.provider.shutdown()
