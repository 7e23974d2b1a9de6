"""Trace joining and idempotent retries (docs/storage.md, trace joining and idempotency)."""

from __future__ import annotations

import time

import grpc
import redis
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcExporter
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from tests.support import all_spans, span_count

EXPORT = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"


def _trace_with_one_named_span(session_id: str, unnamed: int = 3):
    """One trace: a root naming the session, ``unnamed`` children from a service without the processor."""
    memory = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("t")
    with tracer.start_as_current_span("root", attributes={"session.id": session_id, "user.id": "u-9"}):
        for i in range(unnamed):
            with tracer.start_as_current_span(f"downstream {i}", attributes={"gen_ai.usage.input_tokens": 5}):
                pass
    spans = memory.get_finished_spans()
    named = [s for s in spans if s.attributes.get("session.id")]
    others = [s for s in spans if not s.attributes.get("session.id")]
    return named, others


def test_spans_without_session_join_their_trace_session_in_either_order(service):
    exporter = GrpcExporter(endpoint=service.grpc_endpoint, insecure=True)
    # unnamed spans reach the store first, in their own request
    named, others = _trace_with_one_named_span("sess-late")
    exporter.export(others)
    assert service.session("sess-late") is None
    exporter.export(named)
    s = service.session("sess-late")
    assert s.span_count == 4 and s.trace_count == 1 and s.input_tokens == 15 and s.user_id == "u-9"
    assert span_count(service.spans("sess-late")) == 4

    # and the other way round: the session is named first, the rest arrives later
    named, others = _trace_with_one_named_span("sess-early")
    exporter.export(named)
    exporter.export(others)
    s = service.session("sess-early")
    assert s.span_count == 4 and s.input_tokens == 15
    assert {sp.name for sp in all_spans(service.spans("sess-early"))} == {
        "root", "downstream 0", "downstream 1", "downstream 2"}


def test_joining_works_across_receivers(redis_url):
    """A second receiver (no shared memory) resolves orphans through Redis alone."""
    from tests.support import RunningService

    with RunningService(redis_url) as first, RunningService(redis_url) as second:
        named, others = _trace_with_one_named_span("sess-x", unnamed=2)
        GrpcExporter(endpoint=first.grpc_endpoint, insecure=True).export(named)
        GrpcExporter(endpoint=second.grpc_endpoint, insecure=True).export(others)
        assert first.session("sess-x").span_count == 3


def test_joining_and_trace_lookups_span_trace_map_epochs(redis_url):
    """The trace map is kept per epoch (an eighth of the retention, at least 1 s): a trace
    claimed in one epoch still joins spans in the next, is carried into it, and stays found
    by trace id for the whole retention."""
    from tests.support import RunningService

    with RunningService(redis_url, retention="8s") as first, RunningService(redis_url, retention="8s") as second:
        store = second.store
        assert store.joining.epoch_ms == 1000
        named, others = _trace_with_one_named_span("sess-epochs", unnamed=2)
        trace_id = named[0].context.trace_id.to_bytes(16, "big")
        time.sleep(1 - time.time() % 1 + 0.05)  # just after an epoch starts
        GrpcExporter(endpoint=first.grpc_endpoint, insecure=True).export(named)
        claimed_in = int(time.time() * 1000) // store.joining.epoch_ms
        time.sleep(1 - time.time() % 1 + 0.05)  # the next epoch
        GrpcExporter(endpoint=second.grpc_endpoint, insecure=True).export(others)
        assert second.session("sess-epochs").span_count == 3
        client = redis.Redis.from_url(redis_url)
        assert client.hget(store.keys.trace_map(trace_id, claimed_in + 1), trace_id) == b"sess-epochs"
        assert 8000 < client.pttl(store.keys.trace_map(trace_id, claimed_in + 1)) <= 10_000
        time.sleep(3)  # epochs later, within the retention
        assert second.call(store.get_trace_session(trace_id)) == "sess-epochs"


def test_unjoined_spans_are_kept_by_trace(service):
    _named, others = _trace_with_one_named_span("never-sent")
    GrpcExporter(endpoint=service.grpc_endpoint, insecure=True).export(others)
    trace_id = others[0].context.trace_id.to_bytes(16, "big")
    assert service.call(service.store.get_trace_session(trace_id)) is None
    assert span_count(service.call(service.store.get_parked_spans(trace_id))) == 3


def test_same_request_twice_counts_once(service):
    named, others = _trace_with_one_named_span("sess-retry")
    body = encode_spans(named + others).SerializeToString()
    with grpc.insecure_channel(service.grpc_endpoint) as channel:
        export = channel.unary_unary(EXPORT)
        export(body)
        export(body)
    import urllib.request

    request = urllib.request.Request(service.http_url + "/v1/traces", data=body, method="POST",
                                     headers={"Content-Type": "application/x-protobuf"})
    with urllib.request.urlopen(request) as response:
        assert response.status == 200
    s = service.session("sess-retry", with_traces=True)
    assert s.span_count == 4 and s.input_tokens == 15 and s.trace_count == 1
    assert s.traces[0].span_count == 4
    assert span_count(service.spans("sess-retry")) == 4


def test_partly_repeated_batch_counts_only_new_spans(service):
    named, others = _trace_with_one_named_span("sess-partial")
    exporter = GrpcExporter(endpoint=service.grpc_endpoint, insecure=True)
    exporter.export(named + others[:1])
    exporter.export(named + others)  # a collector re-batched: two old spans, two new
    s = service.session("sess-partial")
    assert s.span_count == 4 and s.input_tokens == 15
    assert span_count(service.spans("sess-partial")) == 4


def test_span_repeated_within_one_request_counts_once(service):
    named, others = _trace_with_one_named_span("sess-repeat-inside")
    exporter = GrpcExporter(endpoint=service.grpc_endpoint, insecure=True)
    exporter.export(named + others + others[:2])  # two spans twice in the same request
    s = service.session("sess-repeat-inside", with_traces=True)
    assert s.span_count == 4 and s.input_tokens == 15 and s.traces[0].span_count == 4
    assert span_count(service.spans("sess-repeat-inside")) == 4
