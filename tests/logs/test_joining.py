"""Trace joining of log records: a record without a session joins the session of its trace,
through the trace map the spans use, whether it arrives after the trace named its session
or before (it then waits by trace id and is adopted when the trace is claimed), in one
receiver or across two; and a record naming a session claims its trace for the spans
waiting for it."""

from __future__ import annotations

import logging

import pytest
from opentelemetry import propagate
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcSpanExporter
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from otel_sessions.processor import SessionSpanProcessor, session
from tests.logs.helpers import grpc_log_exporter, log_provider, stdlib_logger
from tests.support import RunningService, span_count

try:
    from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter as InMemoryLogExporter
except ImportError:  # pragma: no cover - older SDKs
    from opentelemetry.sdk._logs.export import InMemoryLogExporter  # type: ignore[no-redef]

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


class TwoServices:
    """Service A (session processor, its spans name the session) calls service B (no
    processor: neither its spans nor its log records name a session) with the trace context
    propagated in headers. Everything is captured in memory, to be sent in a chosen order."""

    def __init__(self, session_id: str) -> None:
        self.a_spans = InMemorySpanExporter()
        a = TracerProvider(resource=Resource.create({"service.name": "service-a"}))
        a.add_span_processor(SessionSpanProcessor())
        a.add_span_processor(SimpleSpanProcessor(self.a_spans))
        self.b_spans = InMemorySpanExporter()
        b = TracerProvider(resource=Resource.create({"service.name": "service-b"}))
        b.add_span_processor(SimpleSpanProcessor(self.b_spans))
        self.b_logs = InMemoryLogExporter()
        b_logs = LoggerProvider(resource=Resource.create({"service.name": "service-b"}))
        b_logs.add_log_record_processor(SimpleLogRecordProcessor(self.b_logs))  # no SessionLogProcessor
        b_logger = stdlib_logger(b_logs, "service-b")

        with session(session_id, user_id="u-join"):
            with a.get_tracer("a").start_as_current_span("handle request"):
                headers: dict[str, str] = {}
                propagate.inject(headers)
        # service B, in another process in real life: only the headers cross
        context = propagate.extract(headers)
        with b.get_tracer("b").start_as_current_span("lookup", context=context):
            b_logger.info("cache miss for order 42")
            b_logger.error("upstream timed out")
        self.trace_id = self.a_spans.get_finished_spans()[0].context.trace_id.to_bytes(16, "big")
        self.b_span_id = self.b_spans.get_finished_spans()[0].context.span_id

    @property
    def logs(self):
        return self.b_logs.get_finished_logs()


def _stored_logs(service, session_id: str) -> list:
    data = service.call(service.store.logs.get_logs(session_id))
    return [r for rl in data.resource_logs for sl in rl.scope_logs for r in sl.log_records] if data else []


@pytest.mark.parametrize("logs_first", [False, True], ids=["after the trace", "before the trace"])
def test_logs_of_a_service_without_the_processor_join_the_session_of_their_trace(service, logs_first):
    two = TwoServices("sess-join")
    spans = GrpcSpanExporter(endpoint=service.grpc_endpoint, insecure=True)
    logs = grpc_log_exporter(service)
    if logs_first:
        logs.export(two.logs)
        assert service.session("sess-join") is None  # waiting by trace id
        waiting = service.call(service.store.logs.get_parked_logs(two.trace_id))
        assert sum(len(sl.log_records) for rl in waiting.resource_logs for sl in rl.scope_logs) == 2
    spans.export(two.a_spans.get_finished_spans())
    if not logs_first:
        logs.export(two.logs)
    spans.export(two.b_spans.get_finished_spans())
    s = service.session("sess-join")
    assert (s.span_count, s.log_count, s.error_log_count) == (2, 2, 1)
    assert s.first_error_log_message == "upstream timed out" and s.user_id == "u-join"
    records = _stored_logs(service, "sess-join")
    assert [r.body.string_value for r in records] == ["cache miss for order 42", "upstream timed out"]
    assert {r.span_id for r in records} == {two.b_span_id.to_bytes(8, "big")}
    if logs_first:  # adopted, and the waiting list trimmed
        waiting = service.call(service.store.logs.get_parked_logs(two.trace_id))
        assert not waiting.resource_logs
    # a retry of the log request (the exporter timed out) adds nothing
    logs.export(two.logs)
    assert service.session("sess-join").log_count == 2


def test_a_record_naming_a_session_claims_its_trace_for_waiting_spans(service):
    two = TwoServices("sess-claim")
    GrpcSpanExporter(endpoint=service.grpc_endpoint, insecure=True).export(two.b_spans.get_finished_spans())
    assert service.session("sess-claim") is None  # B's span waits by trace
    # service A logs in the session, inside its span: the record names the session and the trace
    provider = log_provider(grpc_log_exporter(service), service_name="service-a")
    tracer = TracerProvider().get_tracer("a")
    from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags, set_span_in_context

    parent = SpanContext(int.from_bytes(two.trace_id, "big"), 0x1234, is_remote=False, trace_flags=TraceFlags(1))
    with session("sess-claim"):
        with tracer.start_as_current_span("a", context=set_span_in_context(NonRecordingSpan(parent))):
            stdlib_logger(provider, "service-a").warning("claiming")
    provider.shutdown()
    s = service.session("sess-claim")
    assert (s.span_count, s.log_count) == (1, 1)
    assert span_count(service.spans("sess-claim")) == 1
    # B's log records, later, join too
    grpc_log_exporter(service).export(two.logs)
    assert service.session("sess-claim").log_count == 3


def test_joining_works_across_receivers(redis_url):
    """The second receiver knows nothing in memory: the records wait in Redis and the first
    receiver's claim adopts them."""
    with RunningService(redis_url) as first, RunningService(redis_url) as second:
        two = TwoServices("sess-two-receivers")
        grpc_log_exporter(second).export(two.logs)
        GrpcSpanExporter(endpoint=first.grpc_endpoint, insecure=True).export(two.a_spans.get_finished_spans())
        s = first.session("sess-two-receivers")
        assert (s.span_count, s.log_count) == (1, 2)
        # and once the trace is known, records go straight to the session, on either receiver
        more = TwoServices("sess-two-receivers")  # a new trace of the same session
        GrpcSpanExporter(endpoint=first.grpc_endpoint, insecure=True).export(more.a_spans.get_finished_spans())
        grpc_log_exporter(second).export(more.logs)
        assert second.session("sess-two-receivers").log_count == 4


def test_logs_in_a_session_across_threads_and_tasks_keep_their_order_and_spans(service):
    import asyncio
    import threading

    provider = log_provider(grpc_log_exporter(service))
    logger = stdlib_logger(provider, "worker")
    logging.getLogger("worker").setLevel(logging.INFO)
    tracer = TracerProvider().get_tracer("t")

    def work(i: int) -> None:
        with session(f"sess-thread-{i}"), tracer.start_as_current_span(f"job {i}"):
            for step in range(3):
                logger.info("thread %d step %d", i, step)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    async def task(i: int) -> None:
        with session(f"sess-task-{i}"):
            for step in range(3):
                logger.info("task %d step %d", i, step)
                await asyncio.sleep(0)

    async def main() -> None:
        await asyncio.gather(*(task(i) for i in range(3)))

    asyncio.run(main())
    provider.shutdown()
    for i in range(4):
        records = _stored_logs(service, f"sess-thread-{i}")
        assert [r.body.string_value for r in records] == [f"thread {i} step {s}" for s in range(3)]
        assert len({r.span_id for r in records}) == 1 and records[0].span_id != bytes(8)
    for i in range(3):
        assert service.session(f"sess-task-{i}").log_count == 3
