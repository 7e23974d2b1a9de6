"""Forwarding of log records (--forward): every received log request reaches real OTLP
downstreams (gRPC LogsService and HTTP /v1/logs) beside the spans, with session.id,
gen_ai.conversation.id and user.id added to the records that lack them where the store knows
their session (by their trace, joined in the request or through Redis)."""

from __future__ import annotations

import time

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


LOG_JOIN = "otel_sessions_forward_log_join_records_total"
LOG_HELD = "otel_sessions_forward_log_join_held_records"


def _log_join_counts() -> dict[str, float]:
    return {result: metric(LOG_JOIN, result=result) for result in ("joined", "timeout", "overflow", "shutdown")}


def _moved(before: dict[str, float]) -> dict[str, float]:
    return {k: v - before[k] for k, v in _log_join_counts().items() if v - before[k]}


def test_records_that_come_before_their_session_are_held_until_it_is_named(redis_url, downstreams):
    """The join wait: records of a trace that names no session yet are held, and forwarded with
    the session once a span of the trace names it (here long before the 30 s wait ends)."""
    grpc_down, _http_down = downstreams
    before = _log_join_counts()
    with RunningService(redis_url, forward=[grpc_down.url], forward_join_wait="30s") as service:
        two = TwoServices("sess-logjoin")
        from tests.logs.helpers import grpc_log_exporter

        grpc_log_exporter(service).export(two.logs)  # the records first: their trace names no session
        assert wait_until(lambda: metric(LOG_HELD) == len(two.logs), message="records held")
        assert grpc_down.records() == []
        OTLPSpanExporter(endpoint=service.grpc_endpoint, insecure=True).export(two.a_spans.get_finished_spans())
        records = grpc_down.wait_for_records(len(two.logs), timeout=10)
        assert all(_attributes(r)["session.id"] == "sess-logjoin" for r in records)
        assert all(_attributes(r)["user.id"] == "u-join" for r in records)
        assert metric(LOG_HELD) == 0
    assert _moved(before) == {"joined": len(two.logs)}


def test_records_whose_trace_never_names_a_session_go_on_after_the_wait(redis_url, downstreams):
    grpc_down, _http_down = downstreams
    before = _log_join_counts()
    with RunningService(redis_url, forward=[grpc_down.url], forward_join_wait="1s",
                        forward_join_max_spans=2) as service:
        grpc_export(service, request([record("alone", trace_id=random_id(16)),
                                      record("alone too", trace_id=random_id(16))]).SerializeToString())
        # beyond the bound (2 held records): forwarded at once, as it is
        grpc_export(service, request([record("overflow", trace_id=random_id(16))]).SerializeToString())
        assert [r.body.string_value for r in grpc_down.wait_for_records(1, timeout=5)] == ["overflow"]
        started = time.monotonic()
        records = grpc_down.wait_for_records(3, timeout=10)
        assert time.monotonic() - started > 0.5  # held for the wait
        assert {r.body.string_value for r in records} == {"overflow", "alone", "alone too"}
        assert all("session.id" not in _attributes(r) for r in records)
    assert _moved(before) == {"timeout": 2, "overflow": 1}


def test_held_records_go_on_as_they_are_at_shutdown(redis_url, downstreams):
    grpc_down, _http_down = downstreams
    before = _log_join_counts()
    with RunningService(redis_url, forward=[grpc_down.url], forward_join_wait="60s") as service:
        grpc_export(service, request([record("held at stop", trace_id=random_id(16))]).SerializeToString())
        assert wait_until(lambda: metric(LOG_HELD) == 1, message="record held")
    assert [r.body.string_value for r in grpc_down.wait_for_records(1, timeout=5)] == ["held at stop"]
    assert _moved(before) == {"shutdown": 1}
