"""Zero-code's placing of ``SessionLogProcessor`` ahead of a LoggerProvider's processors, on real SDK
providers (the whole ``opentelemetry-instrument`` run is in ``test_processes.py``)."""

from __future__ import annotations

from opentelemetry.sdk._logs import ConcurrentMultiLogRecordProcessor, LoggerProvider
from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor

from otel_sessions.processor import SessionLogProcessor
from otel_sessions.processor.autoinstrument import _add_first

from .conftest import InMemoryLogExporter


def test_add_first_puts_the_processor_ahead_of_those_already_added() -> None:
    provider = LoggerProvider()
    exporting = SimpleLogRecordProcessor(InMemoryLogExporter())
    provider.add_log_record_processor(exporting)
    ours = SessionLogProcessor()
    assert _add_first(provider, ours) is True
    assert provider._multi_log_record_processor._log_record_processors == (ours, exporting)
    provider.shutdown()


def test_add_first_changes_nothing_on_a_concurrent_multi_processor() -> None:
    multi = ConcurrentMultiLogRecordProcessor()
    provider = LoggerProvider(multi_log_record_processor=multi)
    exporting = SimpleLogRecordProcessor(InMemoryLogExporter())
    provider.add_log_record_processor(exporting)
    assert _add_first(provider, SessionLogProcessor()) is False  # no order to be first in
    assert multi._log_record_processors == (exporting,)
    provider.shutdown()
