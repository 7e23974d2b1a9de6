"""SessionGroupingSpanProcessor with real spans: grouping, bounds, deadlines, fork."""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Sequence

import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from otel_sessions.processor import SessionGroupingSpanProcessor, SessionSpanProcessor, session
from otel_sessions.processor.attributes import SESSION_ID


class RecordingExporter(SpanExporter):
    """Keeps each export call's spans; can hold exports until ``release`` is set."""

    def __init__(self, hold: bool = False) -> None:
        self.calls: list[list[ReadableSpan]] = []
        self.entered = threading.Event()
        self.release = threading.Event()
        if not hold:
            self.release.set()
        self.shut_down = False

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.entered.set()
        self.release.wait(30)
        self.calls.append(list(spans))
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        self.shut_down = True


def _setup(exporter: SpanExporter, **kwargs: float) -> tuple[TracerProvider, SessionGroupingSpanProcessor]:
    provider = TracerProvider()
    provider.add_span_processor(SessionSpanProcessor(baggage=False))
    grouping = SessionGroupingSpanProcessor(exporter, **kwargs)
    provider.add_span_processor(grouping)
    return provider, grouping


def _session_of(span: ReadableSpan) -> str | None:
    return (span.attributes or {}).get(SESSION_ID)  # type: ignore[return-value]


def test_interleaved_sessions_reach_the_exporter_grouped() -> None:
    exporter = RecordingExporter()
    provider, grouping = _setup(exporter, schedule_delay_millis=60_000, max_export_batch_size=512)
    tracer = provider.get_tracer("t")
    for i in range(30):  # a, b, c, none, a, b, c, none, ...
        which = ("a", "b", "c", None)[i % 4]
        if which is None:
            tracer.start_span(f"free-{i}").end()
        else:
            with session(which):
                tracer.start_span(f"{which}-{i}").end()
    assert grouping.force_flush()
    (call,) = exporter.calls
    order = [_session_of(span) for span in call]
    assert order == ["a"] * 8 + ["b"] * 8 + ["c"] * 7 + [None] * 7  # contiguous, first-seen order
    provider.shutdown()
    assert exporter.shut_down


def test_each_export_call_carries_whole_groups_within_the_batch_size() -> None:
    exporter = RecordingExporter(hold=True)
    provider, grouping = _setup(exporter, schedule_delay_millis=60_000, max_queue_size=1000, max_export_batch_size=10)
    tracer = provider.get_tracer("t")
    tracer.start_span("warm-up").end()
    flusher = threading.Thread(target=grouping.force_flush)
    flusher.start()
    assert exporter.entered.wait(30)  # worker busy: everything below lands in one flush window
    sizes = {"s1": 4, "s2": 5, "s3": 3, "big": 23}
    for _ in range(max(sizes.values())):
        for sid, size in sizes.items():
            if size:
                with session(sid):
                    tracer.start_span(sid).end()
                sizes[sid] -= 1
    exporter.release.set()
    flusher.join()
    assert grouping.force_flush()
    provider.shutdown()
    assert [span.name for span in exporter.calls.pop(0)] == ["warm-up"]
    assert all(len(call) <= 10 for call in exporter.calls)
    seen_in: dict[str, set[int]] = {}
    for index, call in enumerate(exporter.calls):
        for span in call:
            seen_in.setdefault(_session_of(span), set()).add(index)
    for sid in ("s1", "s2", "s3"):
        assert len(seen_in[sid]) == 1  # a group that fits a batch is never split
    big_calls = [call for call in exporter.calls if any(_session_of(s) == "big" for s in call)]
    assert all({_session_of(s) for s in call} == {"big"} for call in big_calls)  # split alone
    assert sum(len(call) for call in exporter.calls) == 4 + 5 + 3 + 23


def test_batch_size_triggers_an_export_before_the_delay() -> None:
    exporter = RecordingExporter()
    provider, _ = _setup(exporter, schedule_delay_millis=600_000, max_queue_size=100, max_export_batch_size=5)
    tracer = provider.get_tracer("t")
    with session("s"):
        for i in range(5):
            tracer.start_span(f"s-{i}").end()
    assert exporter.entered.wait(30)  # well before the 10-minute delay
    provider.shutdown()


def test_schedule_delay_exports_without_a_flush() -> None:
    exporter = RecordingExporter()
    provider, _ = _setup(exporter, schedule_delay_millis=50, max_export_batch_size=512)
    provider.get_tracer("t").start_span("lonely").end()
    assert exporter.entered.wait(30)
    provider.shutdown()


def test_memory_bound_drops_are_counted_and_logged(caplog: pytest.LogCaptureFixture) -> None:
    exporter = RecordingExporter(hold=True)
    provider, grouping = _setup(exporter, schedule_delay_millis=600_000, max_queue_size=10, max_export_batch_size=10)
    tracer = provider.get_tracer("t")
    tracer.start_span("first").end()
    flusher = threading.Thread(target=grouping.force_flush)
    flusher.start()
    assert exporter.entered.wait(30)  # the worker is now stuck in export
    with caplog.at_level(logging.WARNING, logger="otel_sessions"), session("s"):
        for i in range(13):
            tracer.start_span(f"queued-{i}").end()
    assert grouping.dropped_spans == 3
    assert sum("queue full" in r.getMessage() for r in caplog.records) == 1  # once, not per span
    exporter.release.set()
    flusher.join()
    assert grouping.force_flush()
    assert sum(len(call) for call in exporter.calls) == 11
    provider.shutdown()


def test_shutdown_with_a_hung_exporter_returns_by_its_deadline(caplog: pytest.LogCaptureFixture) -> None:
    exporter = RecordingExporter(hold=True)  # export blocks until released
    provider, grouping = _setup(exporter, schedule_delay_millis=600_000)
    provider.get_tracer("t").start_span("stuck").end()
    with caplog.at_level(logging.WARNING, logger="otel_sessions"):
        grouping.shutdown(timeout_millis=100)
    # shutdown returned while the export is still blocked: it did not wait for the exporter
    assert exporter.entered.is_set() and exporter.calls == []
    assert exporter.shut_down and "still busy" in caplog.text
    assert grouping.force_flush(timeout_millis=10) is True  # after shutdown: nothing to do
    grouping.shutdown()  # idempotent
    provider.get_tracer("t").start_span("after").end()  # ignored, no error
    exporter.release.set()


def test_force_flush_reports_a_missed_deadline() -> None:
    exporter = RecordingExporter(hold=True)
    provider, grouping = _setup(exporter, schedule_delay_millis=600_000)
    provider.get_tracer("t").start_span("slow").end()
    assert grouping.force_flush(timeout_millis=50) is False
    exporter.release.set()
    assert grouping.force_flush()
    provider.shutdown()


def test_failing_exporter_never_reaches_the_app(caplog: pytest.LogCaptureFixture) -> None:
    class Failing(RecordingExporter):
        def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
            raise RuntimeError("backend down")

    provider, grouping = _setup(Failing(), schedule_delay_millis=600_000)
    provider.get_tracer("t").start_span("x").end()
    with caplog.at_level(logging.ERROR, logger="otel_sessions"):
        assert grouping.force_flush()
    assert "exporting 1 spans failed" in caplog.text
    provider.shutdown()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_fork_child_gets_a_fresh_queue_and_worker() -> None:
    exporter = RecordingExporter()
    provider, grouping = _setup(exporter, schedule_delay_millis=600_000)
    tracer = provider.get_tracer("t")
    tracer.start_span("parent-pending").end()
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: its own worker exports its own spans, not the parent's
        try:
            with session("child-session"):
                tracer.start_span("child-span").end()
            ok = grouping.force_flush(timeout_millis=10_000)
            names = [span.name for call in exporter.calls for span in call]
            os.write(write_end, f"{ok}:{','.join(names)}".encode())
        finally:
            os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end) as pipe:
        child_report = pipe.read()
    os.waitpid(pid, 0)
    assert child_report == "True:child-span"
    assert grouping.force_flush()
    assert [span.name for call in exporter.calls for span in call] == ["parent-pending"]
    provider.shutdown()
