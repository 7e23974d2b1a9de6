"""Forwarding of log records (--forward): every received log request reaches real OTLP
downstreams (gRPC LogsService and HTTP /v1/logs) beside the spans, with session.id,
gen_ai.conversation.id and user.id added to the records that lack them where the store knows
their session (by their trace, joined in the request or through Redis)."""

from __future__ import annotations

import pytest
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

from tests.downstream import GrpcReceiver, HttpReceiver
from tests.logs.helpers import grpc_export, random_id, record, request
from tests.logs.test_joining import TwoServices
from tests.support import RunningService, metric, wait_until

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@pytest.fixture()
def downstreams():
    receivers = GrpcReceiver().start(), HttpReceiver().start()
    yield receivers
    for receiver in receivers:
        receiver.stop()


def _attributes(record) -> dict:
    return {kv.key: kv.value.string_value for kv in record.attributes}


def test_log_records_are_forwarded_enriched_with_their_session(redis_url, downstreams):
    grpc_down, http_down = downstreams
    with RunningService(redis_url, forward=[grpc_down.url, http_down.url + "/v1/traces"]) as service:
        two = TwoServices("sess-fwd")
        # the session's trace is claimed by A's spans; B's records (no session) join it in Redis
        OTLPSpanExporter(endpoint=service.grpc_endpoint, insecure=True).export(two.a_spans.get_finished_spans())
        from tests.logs.helpers import grpc_log_exporter

        grpc_log_exporter(service).export(two.logs)
        trace = random_id(16)
        grpc_export(service, request([
            record("names its session", trace_id=trace, **{"session.id": "sess-own", "user.id": "u-own"}),
            record("same trace, no session", trace_id=trace, time_ns=1_700_000_000_000_000_001),
            record("waits by trace", trace_id=random_id(16)),
            record("neither: refused here, forwarded as received"),
        ]).SerializeToString())
        for down in (grpc_down, http_down):
            records = down.wait_for_records(6)
            assert len(records) == 6
            by_body = {r.body.string_value: _attributes(r) for r in records}
            for body in ("cache miss for order 42", "upstream timed out"):
                assert by_body[body]["session.id"] == "sess-fwd" and by_body[body]["user.id"] == "u-join"
            assert by_body["same trace, no session"]["session.id"] == "sess-own"
            assert by_body["same trace, no session"]["user.id"] == "u-own"
            assert "session.id" not in by_body["waits by trace"]
            assert "session.id" not in by_body["neither: refused here, forwarded as received"]
            down.wait_for_spans(1)  # the spans went on too, to /v1/traces
        assert http_down.content_types and set(http_down.content_types) == {"application/x-protobuf"}
        wait_until(lambda: metric("otel_sessions_forward_log_records_sent_total", destination=grpc_down.url) >= 6)
        assert metric("otel_sessions_forward_log_records_enriched_total") >= 3
