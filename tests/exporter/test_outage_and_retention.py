"""Redis outages and retention: nothing lost, nothing kept forever."""

from __future__ import annotations

import threading
import time
import urllib.error
import urllib.request

import grpc
import pytest
import redis
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpExporter
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from otel_sessions.exporter.store.embedded_redis import EmbeddedRedis
from tests.support import RunningService

EXPORT = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"


def _spans(session_id: str, count: int, tokens: int = 1):
    memory = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("t")
    for i in range(count):
        with tracer.start_as_current_span(f"span {i}", attributes={
            "session.id": session_id, "gen_ai.conversation.id": "thrd-r", "user.id": "u-r",
            "session.name": "retained", "gen_ai.usage.input_tokens": tokens,
        }):
            pass
    return memory.get_finished_spans()


@pytest.fixture()
def own_redis(tmp_path):
    """A persistent redis-server of this test alone (it is stopped and restarted)."""
    server = EmbeddedRedis(tmp_path / "redis", port=None, persistent=True).start()
    yield server
    server.stop()


def test_redis_outage_mid_stream_loses_and_doubles_nothing(own_redis):
    with RunningService(own_redis.url) as service:
        grpc_exporter = GrpcExporter(endpoint=service.grpc_endpoint, insecure=True, timeout=30)
        http_exporter = HttpExporter(endpoint=service.http_url + "/v1/traces", timeout=30)
        batches = [_spans("sess-outage", 20, tokens=2) for _ in range(10)]
        results = []

        def stream():
            for i, batch in enumerate(batches):
                exporter = grpc_exporter if i % 2 == 0 else http_exporter
                results.append(exporter.export(batch))
                time.sleep(0.1)

        sender = threading.Thread(target=stream)
        sender.start()
        time.sleep(0.35)
        own_redis.stop()  # Redis goes away in the middle of the stream
        started = time.monotonic()

        # while it is down, the receiver says so in the retryable way, and readiness fails
        body = encode_spans(_spans("sess-probe", 1)).SerializeToString()
        with grpc.insecure_channel(service.grpc_endpoint) as channel:
            with pytest.raises(grpc.RpcError) as failure:
                channel.unary_unary(EXPORT)(body, timeout=10)
        assert failure.value.code() == grpc.StatusCode.UNAVAILABLE
        request = urllib.request.Request(service.http_url + "/v1/traces", data=body, method="POST",
                                         headers={"Content-Type": "application/x-protobuf"})
        with pytest.raises(urllib.error.HTTPError) as http_failure:
            urllib.request.urlopen(request, timeout=10)
        assert http_failure.value.code == 503 and http_failure.value.headers["Retry-After"]
        with pytest.raises(urllib.error.HTTPError) as not_ready:
            urllib.request.urlopen(service.http_url + "/readyz", timeout=5)
        assert not_ready.value.code == 503
        time.sleep(max(0.0, 1.5 - (time.monotonic() - started)))
        own_redis.start()  # same port, same append-only file
        sender.join(60)
        assert not sender.is_alive()
        from opentelemetry.sdk.trace.export import SpanExportResult

        assert results == [SpanExportResult.SUCCESS] * 10
        s = service.session("sess-outage")
        assert s.span_count == 200 and s.input_tokens == 400
        with urllib.request.urlopen(service.http_url + "/metrics") as response:
            metrics = response.read().decode()
        assert "otel_sessions_redis_errors_total" in metrics
        errors = [line for line in metrics.splitlines() if line.startswith("otel_sessions_redis_errors_total ")]
        assert float(errors[0].split()[1]) >= 1


def test_every_key_has_a_ttl_and_expires(redis_url):
    client = redis.Redis.from_url(redis_url)
    no_ttl: list[bytes] = []
    stop = threading.Event()

    def watch():
        while not stop.is_set():
            for key in client.scan_iter(count=1000):
                if client.ttl(key) == -1:
                    no_ttl.append(key)

    with RunningService(redis_url, retention="3s", thread_idle="1s") as service:
        watcher = threading.Thread(target=watch)
        watcher.start()
        exporter = GrpcExporter(endpoint=service.grpc_endpoint, insecure=True)
        for i in range(20):
            exporter.export(_spans(f"sess-ttl-{i % 4}", 5))
        # orphans (parked by trace) have a TTL too
        from tests.exporter.test_joining_and_retries import _trace_with_one_named_span

        exporter.export(_trace_with_one_named_span("unsent")[1])
        stop.set()
        watcher.join()
        assert no_ttl == []
        assert client.dbsize() > 0
        ids, total = service.call(service.store.recent_session_ids(10))
        assert total == 4
        deadline = time.monotonic() + 30
        while client.dbsize():
            assert time.monotonic() < deadline, [k for k in client.scan_iter()]
            time.sleep(0.1)
        ids, total = service.call(service.store.recent_session_ids(10))
        assert (ids, total) == ([], 0)
        assert service.session("sess-ttl-0") is None
