"""The retry delay the service asks for reaches the stock Python gRPC exporter: it reads
``RetryInfo`` only from a ``google.rpc.retryinfo-bin`` trailer, not from the status details
(``grpc-status-details-bin``) where the Collector and the Go SDK read it; both are sent."""

from __future__ import annotations

import threading
import time

import grpc
from google.rpc import error_details_pb2, status_pb2
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcExporter
from opentelemetry.sdk.trace.export import SpanExportResult

from otel_sessions.exporter.errors import RETRY_AFTER_S
from tests.faults.harness import EXPORT, Workload, body_of, conditions, request_counts, wait_until
from tests.support import RunningService


def test_retry_info_in_both_trailers_and_the_python_exporter_waits_for_it(faulty_redis, tmp_path):
    out_of_memory = conditions(faulty_redis, tmp_path)["OOM"]
    workload = Workload("delay")
    with RunningService(faulty_redis.url, redis_timeout="2s") as service:
        def refused() -> float:
            return request_counts(service.http_url).get(("grpc", "unavailable"), 0)

        out_of_memory.refuse()
        try:
            count = refused()
            with grpc.insecure_channel(service.grpc_endpoint) as channel:
                try:
                    channel.unary_unary(EXPORT)(body_of(workload.batch([1])), timeout=10)
                    raise AssertionError("stored while Redis is out of memory")
                except grpc.RpcError as failure:
                    code, trailers = failure.code(), dict(failure.trailing_metadata())
            assert code == grpc.StatusCode.UNAVAILABLE
            (detail,) = status_pb2.Status.FromString(trailers["grpc-status-details-bin"]).details
            in_status = error_details_pb2.RetryInfo()
            assert detail.Unpack(in_status)
            alone = error_details_pb2.RetryInfo.FromString(trailers["google.rpc.retryinfo-bin"])
            assert alone == in_status and alone.retry_delay.seconds == RETRY_AFTER_S

            # the stock exporter's attempts, as the service counts them, come RETRY_AFTER_S apart
            # (its own backoff would be 1 s, then 2 s, each +-20 %)
            exporter = GrpcExporter(endpoint=service.grpc_endpoint, insecure=True, timeout=30)
            results = []
            sender = threading.Thread(target=lambda: results.append(exporter.export(workload.batch([2]))))
            attempts: list[float] = []
            wait_until(lambda: refused() == count + 1, 5, "the raw request to be counted")  # counted after it ends
            count += 1
            sender.start()
            deadline = time.monotonic() + 10
            while len(attempts) < 3 and time.monotonic() < deadline:
                now = refused()
                if now > count:
                    attempts.append(time.monotonic())
                    count = now
                time.sleep(0.02)
        finally:
            out_of_memory.recover()
        sender.join(30)
        exporter.shutdown()
        assert results == [SpanExportResult.SUCCESS]
        gaps = [later - earlier for earlier, later in zip(attempts, attempts[1:])]
        assert len(gaps) == 2 and all(RETRY_AFTER_S - 0.2 < gap < RETRY_AFTER_S + 1.0 for gap in gaps), gaps
