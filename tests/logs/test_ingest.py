"""OTLP logs in: both receivers (gRPC, HTTP protobuf and JSON), the session summary's log
figures, retries counted once, records refused or dropped said in partial_success, bad input
answered like traces, the per-session bound, and TTLs on every key."""

from __future__ import annotations

import gzip
import json
import threading
import time

import grpc
import pytest
import redis
from google.rpc import code_pb2, status_pb2
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceResponse

from otel_sessions.exporter.otlp_json import message_to_json
from otel_sessions.processor import session
from tests.logs.helpers import (
    grpc_export,
    grpc_log_exporter,
    http_log_exporter,
    log_provider,
    post,
    random_id,
    record,
    request,
    stdlib_logger,
)
from tests.support import RunningService

LIMIT = 256 * 1024
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")  # the SDK's LoggingHandler


def _metric(service, name: str) -> float:
    status, _h, body = post(service, b"", method="GET", path="/metrics")
    lines = [x for x in body.decode().splitlines() if x.startswith(name + " ") or x.startswith(name + "{")]
    return sum(float(line.split()[-1]) for line in lines)


@pytest.mark.parametrize("transport", ["grpc", "http"])
def test_sdk_logs_in_a_session_are_stored_with_its_figures(service, transport):
    exporter = grpc_log_exporter(service) if transport == "grpc" else http_log_exporter(service)
    rejected = _metric(service, "otel_sessions_log_records_rejected_total")
    requests = _metric(service, "otel_sessions_log_export_requests_total")
    provider = log_provider(exporter, service_name="billing")
    logger = stdlib_logger(provider, "app")
    logger.info("outside any session: no session, no trace")  # dropped, said to the exporter
    with session("sess-logs", thread_id="thrd-logs", user_id="u-logs", name="Refund"):
        logger.info("looking up the order")
        logger.warning("order is late")
        logger.error("refund failed: card\x07 expired " + "x" * 600)
        logger.critical("giving up")
    provider.shutdown()
    s = service.session("sess-logs")
    assert (s.log_count, s.error_log_count) == (4, 2)
    assert s.first_error_log_message.startswith("refund failed: card\ufffd expired xxx")
    assert len(s.first_error_log_message) == 512
    assert (s.user_id, s.thread_id, s.name, s.services) == ("u-logs", "thrd-logs", "Refund", ["billing"])
    assert (s.span_count, s.trace_count, s.status) == (0, 0, "active")
    assert s.start_us > 0 and s.end_us >= s.start_us
    # a session that only has logs is listed, like one written by spans
    listed = service.call(service.store.recent_session_ids(10))
    assert listed == (["sess-logs"], 1)
    logs = service.call(service.store.logs.get_logs("sess-logs"))
    bodies = [r.body.string_value for rl in logs.resource_logs for sl in rl.scope_logs for r in sl.log_records]
    assert bodies[:2] == ["looking up the order", "order is late"] and len(bodies) == 4
    assert _metric(service, "otel_sessions_log_records_rejected_total") == rejected + 1
    assert _metric(service, "otel_sessions_log_export_requests_total") == requests + 5


def test_json_and_protobuf_of_one_request_and_retries_count_once(service):
    stored = _metric(service, "otel_sessions_log_records_stored_total")
    duplicate = _metric(service, "otel_sessions_log_records_duplicate_total")
    body = request([record(f"line {i}", time_ns=1_700_000_000_000_000_000 + i, **{"session.id": "sess-retry"})
                    for i in range(5)])
    proto = body.SerializeToString()
    for _ in range(2):
        assert ExportLogsServiceResponse.FromString(grpc_export(service, proto)) == ExportLogsServiceResponse()
        status, headers, reply = post(service, proto)
        assert status == 200 and headers["Content-Type"] == "application/x-protobuf"
        status, headers, reply = post(service, message_to_json(body), content_type="application/json")
        assert status == 200 and json.loads(reply) == {}
        status, _h, _r = post(service, gzip.compress(proto), headers={"Content-Encoding": "gzip"})
        assert status == 200
    assert service.session("sess-retry").log_count == 5
    # a collector re-batched: two records seen before, three new
    more = request([record(f"line {i}", time_ns=1_700_000_000_000_000_000 + i, **{"session.id": "sess-retry"})
                    for i in range(3, 8)])
    grpc_export(service, more.SerializeToString())
    assert service.session("sess-retry").log_count == 8
    assert _metric(service, "otel_sessions_log_records_stored_total") == stored + 8
    assert _metric(service, "otel_sessions_log_records_duplicate_total") == duplicate + 8 * 5 + 5 - 8


def test_records_without_session_or_trace_are_dropped_and_bad_ids_refused(service):
    trace = random_id(16)
    body = request([
        record("kept", **{"session.id": "sess-partial"}),
        record("no session, no trace"),
        record("bad trace id", trace_id=b"\x01\x02", **{"session.id": "sess-partial"}),
        record("bad span id", trace_id=trace, span_id=b"\x01", **{"session.id": "sess-partial"}),
        record("all-zero trace id is no trace id", trace_id=bytes(16)),
    ])
    reply = ExportLogsServiceResponse.FromString(grpc_export(service, body.SerializeToString()))
    assert reply.partial_success.rejected_log_records == 4
    assert "trace_id" in reply.partial_success.error_message
    assert "without a session id and without a trace_id" in reply.partial_success.error_message
    status, _h, raw = post(service, body.SerializeToString())
    assert status == 200 and ExportLogsServiceResponse.FromString(raw).partial_success.rejected_log_records == 4
    assert service.session("sess-partial").log_count == 1


def test_bad_values_cost_one_value_never_the_batch(service, redis_url):
    invalid_ids = _metric(service, "otel_sessions_invalid_ids_total")
    invalid_values = _metric(service, "otel_sessions_invalid_values_total")
    huge = "s" * 10_000
    trace = random_id(16)
    body = request([
        record("huge session id, kept by its trace", trace_id=trace, **{"session.id": huge}),
        record("control characters in the id", trace_id=trace, **{"session.id": "sess\x00evil"}),
        record("severity out of range", severity=9999, **{"session.id": "sess-values", "user.id": "u" * 10_000}),
        record("far future", time_ns=2**64 - 1, severity=17, **{"session.id": "sess-values"}),
    ])
    reply = ExportLogsServiceResponse.FromString(grpc_export(service, body.SerializeToString()))
    assert reply.partial_success.rejected_log_records == 0
    assert "severity_number outside 0..24" in reply.partial_success.error_message
    assert "time after the year 2255 (clamped)" in reply.partial_success.error_message
    s = service.session("sess-values")
    assert (s.log_count, s.error_log_count, s.user_id) == (2, 1, None)
    assert s.end_us == 2**53 - 1  # clamped as span times are: exact in Redis' Lua numbers
    assert service.session(huge) is None and service.session("sess\x00evil") is None
    parked = service.call(service.store.logs.get_parked_logs(trace))
    assert sum(len(sl.log_records) for rl in parked.resource_logs for sl in rl.scope_logs) == 2
    assert not any(huge.encode() in key for key in redis.Redis.from_url(redis_url).keys("*"))
    assert _metric(service, "otel_sessions_invalid_ids_total") == invalid_ids + 3
    assert _metric(service, "otel_sessions_invalid_values_total") == invalid_values + 2


@pytest.fixture()
def small_service(redis_url):
    with RunningService(redis_url, max_request_bytes=str(LIMIT)) as service:
        yield service


def _status(body: bytes, json_body: bool = False) -> status_pb2.Status:
    if json_body:
        data = json.loads(body)
        return status_pb2.Status(code=data.get("code", 0), message=data.get("message", ""))
    return status_pb2.Status.FromString(body)


def _deep_json(depth: int) -> bytes:
    value = '{"stringValue": "deep"}'
    for _ in range(depth):
        value = '{"arrayValue": {"values": [' + value + ']}}'
    return ('{"resourceLogs": [{"scopeLogs": [{"logRecords": [{"body": ' + value + '}]}]}]}').encode()


def test_bad_requests_get_the_statuses_traces_get(small_service):
    service = small_service
    good = request([record(**{"session.id": "sess-bad"})]).SerializeToString()
    # a body that does not parse
    with pytest.raises(grpc.RpcError) as failure:
        grpc_export(service, good[:-3])
    assert failure.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "ExportLogsServiceRequest" in failure.value.details()
    status, _h, reply = post(service, good[:-3])
    assert status == 400 and _status(reply).code == code_pb2.INVALID_ARGUMENT
    for body in (b"{not json", b"[1]", b'{"resourceLogs": [{"scopeLogs": [{"logRecords": [{"traceId": "zz"}]}]}]}',
                 b'{"resourceLogs": [{"scopeLogs": [{"logRecords": [{"timeUnixNano": "1e999"}]}]}]}',
                 b'{"resourceLogs": [{"scopeLogs": [{"logRecords": [{"severityNumber": 99999999999}]}]}]}',
                 _deep_json(60), _deep_json(5000)):
        status, headers, reply = post(service, body, content_type="application/json")
        assert status == 400, body[:80]
        assert headers["Content-Type"].startswith("application/json")
        assert _status(reply, json_body=True).code == code_pb2.INVALID_ARGUMENT
    # content type, encoding, size
    status, _h, reply = post(service, good, content_type="text/plain")
    assert status == 415 and b"unsupported content type" in reply
    status, _h, _r = post(service, good, headers={"Content-Encoding": "br"})
    assert status == 415
    big = request([record("x" * (LIMIT + 10), **{"session.id": "sess-bad"})]).SerializeToString()
    status, _h, reply = post(service, big)
    assert status == 413 and _status(reply).code == code_pb2.RESOURCE_EXHAUSTED
    with pytest.raises(grpc.RpcError) as failure:
        grpc_export(service, big)
    assert failure.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    status, _h, reply = post(service, gzip.compress(b"\0" * (20 * 1024 * 1024)), headers={"Content-Encoding": "gzip"})
    assert status == 413 and b"decompressed" in reply
    status, _h, reply = post(service, b"", method="GET")
    assert status == 405
    assert service.session("sess-bad") is None
    # empty requests succeed, and the service keeps serving
    assert ExportLogsServiceResponse.FromString(grpc_export(service, b"")) == ExportLogsServiceResponse()
    status, _h, reply = post(service, b"{}", content_type="application/json")
    assert status == 200 and json.loads(reply) == {}
    grpc_export(service, good)
    assert service.session("sess-bad").log_count == 1


def test_ingest_token_guards_the_log_receivers(redis_url):
    with RunningService(redis_url, ingest_token="s3cret") as service:
        body = request([record(**{"session.id": "sess-auth"})]).SerializeToString()
        status, headers, _r = post(service, body)
        assert status == 401 and headers["WWW-Authenticate"] == "Bearer"
        with pytest.raises(grpc.RpcError) as failure:
            grpc_export(service, body)
        assert failure.value.code() == grpc.StatusCode.UNAUTHENTICATED
        assert service.session("sess-auth") is None
        assert post(service, body, headers={"Authorization": "Bearer s3cret"})[0] == 200
        grpc_export(service, body, metadata=(("authorization", "Bearer s3cret"),))
        assert service.session("sess-auth").log_count == 1


def test_health_and_reflection_name_the_logs_service(service):
    from grpc_health.v1 import health_pb2, health_pb2_grpc
    from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

    with grpc.insecure_channel(service.grpc_endpoint) as channel:
        health = health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service="opentelemetry.proto.collector.logs.v1.LogsService"))
        assert health.status == health_pb2.HealthCheckResponse.SERVING
        replies = reflection_pb2_grpc.ServerReflectionStub(channel).ServerReflectionInfo(
            iter([reflection_pb2.ServerReflectionRequest(list_services="")]))
        names = {s.name for reply in replies for s in reply.list_services_response.service}
    assert "opentelemetry.proto.collector.logs.v1.LogsService" in names


def test_records_kept_per_session_are_bounded(redis_url):
    with RunningService(redis_url, max_logs_per_session="10") as service:
        for batch in range(5):
            body = request([record(f"r{batch}.{i}", time_ns=1_700_000_000_000_000_000 + batch * 10 + i,
                                   **{"session.id": "sess-bounded"}) for i in range(4)])
            grpc_export(service, body.SerializeToString())
        s = service.session("sess-bounded")
        assert (s.log_count, s.logs_dropped) == (20, 12)  # whole chunks of 4 go, the oldest first
        logs = service.call(service.store.logs.get_logs("sess-bounded"))
        bodies = [r.body.string_value for rl in logs.resource_logs for sl in rl.scope_logs for r in sl.log_records]
        assert bodies == [f"r{b}.{i}" for b in (3, 4) for i in range(4)]


def test_every_log_key_has_a_ttl_and_expires(redis_url):
    client = redis.Redis.from_url(redis_url)
    no_ttl: list[bytes] = []
    stop = threading.Event()

    def watch():
        while not stop.is_set():
            for key in client.scan_iter(count=1000):
                if client.ttl(key) == -1:
                    no_ttl.append(key)

    with RunningService(redis_url, retention="3s", thread_idle="1s", max_logs_per_session="50") as service:
        watcher = threading.Thread(target=watch)
        watcher.start()
        for i in range(30):  # enough records for the bucketed digests of a large session
            body = request([record(f"{i}.{j}", time_ns=1_700_000_000_000_000_000 + i * 1000 + j,
                                   **{"session.id": f"sess-ttl-{i % 3}", "user.id": "u-ttl",
                                      "gen_ai.conversation.id": "thrd-ttl"}) for j in range(300)])
            grpc_export(service, body.SerializeToString())
        grpc_export(service, request([record("waiting by trace", trace_id=random_id(16))]).SerializeToString())
        stop.set()
        watcher.join()
        assert no_ttl == []
        keys = {key.decode() for key in client.keys("*")}
        assert any(":logids:" in key for key in keys) and any(":lp:" in key for key in keys)
        deadline = time.monotonic() + 30
        while client.dbsize():
            assert time.monotonic() < deadline, list(client.scan_iter())
            time.sleep(0.1)
        assert service.call(service.store.recent_session_ids(10)) == ([], 0)


def test_deleting_a_session_deletes_its_logs(service, redis_url):
    body = request([record(f"{i}", time_ns=1_700_000_000_000_000_000 + i, **{"session.id": "sess-del"})
                    for i in range(3000)])
    grpc_export(service, body.SerializeToString())
    assert service.session("sess-del").log_count == 3000
    assert service.call(service.store.delete_session("sess-del"))
    assert redis.Redis.from_url(redis_url).keys("*sess-del*") == []
