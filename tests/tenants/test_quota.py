"""Quotas per tenant: above its rate a tenant's requests are refused whole with 429 /
RESOURCE_EXHAUSTED and a retry delay (RetryInfo, Retry-After); the stock OTel exporters retry
and everything is stored once; the other tenant is not slowed down; a tenant at its session
quota cannot open a new session but writes to its sessions; usage is in /metrics by tenant."""

from __future__ import annotations

import threading
import time

import grpc
import pytest
import redis
from google.rpc import error_details_pb2, status_pb2
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.trace.export import SpanExportResult

from otel_sessions.exporter.tenants import DEFAULT_TENANT
from tests.logs.helpers import grpc_export, post, record, request
from tests.support import RunningService, metric, tracer
from tests.tenants.helpers import TOKENS, bearer, grpc_exporter, http_exporter, write_tenants_file

EXPORT = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"
RATE = 20


def _spans(session_id: str, count: int, service: str = "quota-app") -> list:
    trace, memory = tracer(service)
    for n in range(count):
        trace.start_span(f"step {n}", attributes={"session.id": session_id}).end()
    return memory.get_finished_spans()


def _body(session_id: str, count: int) -> bytes:
    return encode_spans(_spans(session_id, count)).SerializeToString()


def _grpc(service, body: bytes, token: str):
    with grpc.insecure_channel(service.grpc_endpoint) as channel:
        try:
            channel.unary_unary(EXPORT)(body, metadata=(("authorization", f"Bearer {token}"),), timeout=10)
        except grpc.RpcError as exc:
            return exc
    return None


@pytest.fixture()
def quotas(redis_url, tmp_path):
    path = write_tenants_file(tmp_path, quotas={"team-a": {"spans_per_second": RATE, "log_records_per_second": 5},
                                                "team-b": {"max_sessions": 2}})
    with RunningService(redis_url, tenants=str(path)) as service:
        yield service


def _spans_of(service, tenant: str, session_id: str) -> int:
    summary = service.call(service.service.tenancy.store_of(tenant).get_session(session_id))
    return summary.span_count if summary is not None else 0


def test_over_the_rate_is_resource_exhausted_with_retry_info_and_nothing_stored(quotas):
    token = TOKENS["team-a"]["ingest"]
    refused_before = metric("otel_sessions_tenant_spans_refused_total", tenant="team-a", quota="spans_per_second")
    assert _grpc(quotas, _body("sess-first", RATE), token) is None  # a full bucket takes it
    refused = _grpc(quotas, _body("sess-refused", RATE), token)
    assert refused is not None and refused.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    trailers = dict(refused.trailing_metadata())
    info = error_details_pb2.RetryInfo.FromString(trailers["google.rpc.retryinfo-bin"])
    delay = info.retry_delay.seconds + info.retry_delay.nanos / 1e9
    assert 0 < delay <= 1.0, delay  # the time until 20 spans are back in the bucket
    status = status_pb2.Status.FromString(trailers["grpc-status-details-bin"])
    assert status.code == grpc.StatusCode.RESOURCE_EXHAUSTED.value[0] and "quota" in status.message
    assert status.details[0].Is(error_details_pb2.RetryInfo.DESCRIPTOR)
    # the same over HTTP: 429 with Retry-After, and the refused requests left nothing behind
    code, headers, _ = post(quotas, _body("sess-refused-http", RATE), path="/v1/traces", headers=bearer(token))
    assert code == 429 and headers["Retry-After"] == "1"
    assert _spans_of(quotas, "team-a", "sess-first") == RATE
    for session_id in ("sess-refused", "sess-refused-http"):
        assert quotas.call(quotas.service.tenancy.store_of("team-a").get_session(session_id)) is None
    assert metric("otel_sessions_tenant_spans_refused_total", tenant="team-a",
                  quota="spans_per_second") - refused_before == 2 * RATE
    # team-b has no rate quota: never slowed down meanwhile
    for _ in range(5):
        assert _grpc(quotas, _body("sess-b-fast", RATE), TOKENS["team-b"]["ingest"]) is None
    assert _spans_of(quotas, "team-b", "sess-b-fast") == 5 * RATE
    # once the bucket has refilled, the request passes
    time.sleep(delay + 0.05)
    assert _grpc(quotas, _body("sess-refused", RATE), token) is None


@pytest.mark.parametrize("transport", ["grpc", "http"])
def test_the_stock_exporter_retries_and_stores_everything_once(quotas, transport):
    make = grpc_exporter if transport == "grpc" else http_exporter
    batches = [_spans(f"sess-retried-{transport}", RATE) for _ in range(4)]
    refused_before = metric("otel_sessions_tenant_spans_refused_total", tenant="team-a", quota="spans_per_second")
    b_refused_before = metric("otel_sessions_tenant_spans_refused_total", tenant="team-b", quota="spans_per_second")
    exporter = make(quotas, TOKENS["team-a"]["ingest"], timeout=10)
    other_results: list = []

    def other_tenant() -> None:  # team-b meanwhile: each export answered at once
        other = make(quotas, TOKENS["team-b"]["ingest"])
        for _n in range(4):
            started = time.monotonic()
            other_results.append((other.export(_spans(f"sess-b-{transport}", 5)), time.monotonic() - started))
        other.shutdown()

    side = threading.Thread(target=other_tenant)
    side.start()
    started = time.monotonic()
    for batch in batches:
        assert exporter.export(batch) == SpanExportResult.SUCCESS
    took = time.monotonic() - started
    side.join(30)
    exporter.shutdown()
    assert _spans_of(quotas, "team-a", f"sess-retried-{transport}") == 4 * RATE  # each span once
    refused = metric("otel_sessions_tenant_spans_refused_total", tenant="team-a", quota="spans_per_second")
    assert refused - refused_before >= RATE, "the rate never refused: the exporter's retries were not exercised"
    assert took >= 2.0, took  # 80 spans at 20 per second, the first 20 at once
    assert [result for result, _s in other_results] == [SpanExportResult.SUCCESS] * 4
    assert max(seconds for _r, seconds in other_results) < 1.0, other_results
    assert _spans_of(quotas, "team-b", f"sess-b-{transport}") == 20
    assert metric("otel_sessions_tenant_spans_refused_total", tenant="team-b", quota="spans_per_second") == \
        b_refused_before


def test_log_records_have_their_own_rate(quotas):
    token = TOKENS["team-a"]["ingest"]
    before = metric("otel_sessions_tenant_log_records_refused_total", tenant="team-a", quota="log_records_per_second")
    five = request([record(f"line {n}", **{"session.id": "sess-logs"}) for n in range(5)]).SerializeToString()
    assert post(quotas, five, headers=bearer(token))[0] == 200
    code, headers, _ = post(quotas, five, headers=bearer(token))
    assert code == 429 and int(headers["Retry-After"]) >= 1
    with pytest.raises(grpc.RpcError) as refused:
        grpc_export(quotas, five, metadata=(("authorization", f"Bearer {token}"),))
    assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    summary = quotas.call(quotas.service.tenancy.store_of("team-a").get_session("sess-logs"))
    assert summary.log_count == 5
    assert metric("otel_sessions_tenant_log_records_refused_total", tenant="team-a",
                  quota="log_records_per_second") - before == 10


def test_a_tenant_at_its_session_quota_writes_to_its_sessions_only(quotas):
    token = TOKENS["team-b"]["ingest"]
    before = metric("otel_sessions_tenant_spans_refused_total", tenant="team-b", quota="max_sessions")
    for session_id in ("sess-1", "sess-2"):
        assert _grpc(quotas, _body(session_id, 2), token) is None
    refused = _grpc(quotas, _body("sess-3", 2), token)
    assert refused is not None and refused.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "sessions" in refused.details()
    assert "google.rpc.retryinfo-bin" in dict(refused.trailing_metadata())
    code, headers, _ = post(quotas, _body("sess-3", 2), path="/v1/traces", headers=bearer(token))
    assert code == 429 and int(headers["Retry-After"]) > 60  # until the oldest session expires (24 h retention)
    assert _grpc(quotas, _body("sess-1", 3), token) is None  # a stored session takes more spans
    assert _spans_of(quotas, "team-b", "sess-1") == 5 and _spans_of(quotas, "team-b", "sess-3") == 0
    assert metric("otel_sessions_tenant_spans_refused_total", tenant="team-b", quota="max_sessions") - before == 4
    # team-a has no session quota
    for n in range(5):
        assert _grpc(quotas, _body(f"sess-a-{n}", 1), TOKENS["team-a"]["ingest"]) is None


def test_without_tenants_file_nothing_is_limited_and_keys_stay_where_they_were(redis_url):
    with RunningService(redis_url) as service:
        for _ in range(3):
            assert _grpc(service, _body("sess-open", 50), "ignored") is None
        assert service.session("sess-open").span_count == 150
        assert service.service.tenancy.prefix(DEFAULT_TENANT) == "ots"
    keys = {key.decode() for key in redis.Redis.from_url(redis_url).scan_iter()}
    assert "ots:{sess-open}:sum" in keys and not any(key.startswith("ots:t.") for key in keys)
