"""Bad input: each gets its OTLP-specified status, nothing is stored wrongly,
and the service keeps serving."""

from __future__ import annotations

import gzip
import json
import urllib.error
import urllib.request

import grpc
import pytest
import redis
from google.rpc import code_pb2, status_pb2
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcExporter
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from tests.support import RunningService

EXPORT = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"
LIMIT = 256 * 1024


@pytest.fixture()
def small_service(redis_url):
    with RunningService(redis_url, max_request_bytes=str(LIMIT)) as service:
        yield service


def _request(**attributes) -> ExportTraceServiceRequest:
    memory = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    with provider.get_tracer("t").start_as_current_span("op", attributes=attributes):
        pass
    return encode_spans(memory.get_finished_spans())


def _post(service, body: bytes, content_type="application/x-protobuf", method="POST", path="/v1/traces",
          headers=None):
    request = urllib.request.Request(service.http_url + path, data=body if method == "POST" else None,
                                     method=method, headers={"Content-Type": content_type, **(headers or {})})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers, exc.read()


def _grpc(service, body: bytes):
    with grpc.insecure_channel(service.grpc_endpoint) as channel:
        return channel.unary_unary(EXPORT)(body, timeout=10)


def _still_serving(service, session_id="sess-ok"):
    GrpcExporter(endpoint=service.grpc_endpoint, insecure=True).export(
        InMemoryOne(session_id).spans)
    assert service.session(session_id).span_count == 1


class InMemoryOne:
    def __init__(self, session_id: str) -> None:
        memory = InMemorySpanExporter()
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(memory))
        with provider.get_tracer("t").start_as_current_span("ok", attributes={"session.id": session_id}):
            pass
        self.spans = memory.get_finished_spans()


def _status(body: bytes, json_body: bool = False) -> status_pb2.Status:
    if json_body:
        data = json.loads(body)
        return status_pb2.Status(code=data.get("code", 0), message=data.get("message", ""))
    return status_pb2.Status.FromString(body)


def test_truncated_protobuf(small_service):
    body = _request(**{"session.id": "sess-bad"}).SerializeToString()[:-7]
    with pytest.raises(grpc.RpcError) as failure:
        _grpc(small_service, body)
    assert failure.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "cannot parse" in failure.value.details()
    status, _headers, reply = _post(small_service, body)
    assert status == 400
    parsed = _status(reply)
    assert parsed.code == code_pb2.INVALID_ARGUMENT and "cannot parse" in parsed.message
    assert small_service.session("sess-bad") is None
    _still_serving(small_service)


@pytest.mark.parametrize("body", [b"{not json", b"[1, 2]", b'{"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": "zz"}]}]}]}'])
def test_invalid_json(small_service, body):
    status, headers, reply = _post(small_service, body, content_type="application/json")
    assert status == 400 and headers["Content-Type"].startswith("application/json")
    assert _status(reply, json_body=True).code == code_pb2.INVALID_ARGUMENT
    _still_serving(small_service)


def test_wrong_content_type_and_encoding(small_service):
    body = _request(**{"session.id": "sess-ct"}).SerializeToString()
    status, _h, reply = _post(small_service, body, content_type="text/plain")
    assert status == 415 and b"unsupported content type" in reply
    status, _h, reply = _post(small_service, body, headers={"Content-Encoding": "br"})
    assert status == 415
    assert small_service.session("sess-ct") is None


def test_oversized_bodies(small_service):
    big = _request(**{"session.id": "sess-big", "payload": "x" * (LIMIT + 10)}).SerializeToString()
    status, _h, reply = _post(small_service, big)
    assert status == 413 and _status(reply).code == code_pb2.RESOURCE_EXHAUSTED
    with pytest.raises(grpc.RpcError) as failure:
        _grpc(small_service, big)
    assert failure.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    bomb = gzip.compress(b"\0" * (50 * 1024 * 1024))  # 50 MiB of zeros in about 50 kB
    assert len(bomb) < LIMIT
    status, _h, reply = _post(small_service, bomb, headers={"Content-Encoding": "gzip"})
    assert status == 413 and b"decompressed" in reply
    status, _h, reply = _post(small_service, b"\x1f\x8b not gzip", headers={"Content-Encoding": "gzip"})
    assert status == 400
    assert small_service.session("sess-big") is None
    _still_serving(small_service)


def test_gzip_body_is_accepted(small_service):
    body = gzip.compress(_request(**{"session.id": "sess-gz"}).SerializeToString())
    status, _h, _reply = _post(small_service, body, headers={"Content-Encoding": "gzip"})
    assert status == 200
    assert small_service.session("sess-gz").span_count == 1


def test_huge_and_control_character_ids_are_not_grouped(small_service, redis_url):
    huge = "s" * 10_000
    for bad in (huge, "sess\x00evil", "sess\nnewline"):
        request = _request(**{"session.id": bad, "user.id": "u-1"})
        reply = ExportTraceServiceResponse.FromString(_grpc(small_service, request.SerializeToString()))
        assert not reply.HasField("partial_success")  # stored by trace, not refused
        assert small_service.session(bad) is None
    # a valid session with an invalid user id keeps the session, without the user
    request = _request(**{"session.id": "sess-good", "user.id": "u" * 10_000})
    _grpc(small_service, request.SerializeToString())
    s = small_service.session("sess-good")
    assert s.span_count == 1 and s.user_id is None
    keys = redis.Redis.from_url(redis_url).keys("*")
    assert not any(huge.encode() in key for key in keys)
    status, _h, metrics = _post(small_service, b"", method="GET", path="/metrics")
    line = [x for x in metrics.decode().splitlines() if x.startswith("otel_sessions_invalid_ids_total ")]
    assert float(line[0].split()[1]) >= 4


def test_empty_requests_succeed(small_service):
    assert ExportTraceServiceResponse.FromString(_grpc(small_service, b"")) == ExportTraceServiceResponse()
    status, _h, reply = _post(small_service, b"")
    assert status == 200 and ExportTraceServiceResponse.FromString(reply) == ExportTraceServiceResponse()
    status, _h, reply = _post(small_service, b"{}", content_type="application/json")
    assert status == 200 and json.loads(reply) == {}


def test_invalid_span_ids_are_rejected_in_partial_success(small_service):
    request = _request(**{"session.id": "sess-partial"})
    good = request.resource_spans[0].scope_spans[0].spans[0]
    bad = request.resource_spans[0].scope_spans[0].spans.add()
    bad.CopyFrom(good)
    bad.trace_id = b"\x01\x02"
    reply = ExportTraceServiceResponse.FromString(_grpc(small_service, request.SerializeToString()))
    assert reply.partial_success.rejected_spans == 1 and "trace_id" in reply.partial_success.error_message
    status, _h, body = _post(small_service, request.SerializeToString())
    assert status == 200
    assert ExportTraceServiceResponse.FromString(body).partial_success.rejected_spans == 1
    assert small_service.session("sess-partial").span_count == 1


def test_unknown_paths_and_methods(small_service):
    status, _h, reply = _post(small_service, b"", method="GET", path="/v1/traces")
    assert status == 405 and "not allowed" in json.loads(reply)["error"]
    status, _h, reply = _post(small_service, b"", method="GET", path="/v1/nothing-here")
    assert status == 404 and "no such path" in json.loads(reply)["error"]
    with grpc.insecure_channel(small_service.grpc_endpoint) as channel:
        with pytest.raises(grpc.RpcError) as failure:
            channel.unary_unary("/opentelemetry.proto.collector.trace.v1.TraceService/Nope")(b"", timeout=5)
    assert failure.value.code() == grpc.StatusCode.UNIMPLEMENTED
    _still_serving(small_service)


def test_ingest_token(redis_url):
    with RunningService(redis_url, ingest_token="s3cret") as service:
        body = _request(**{"session.id": "sess-auth"}).SerializeToString()
        status, headers, _reply = _post(service, body)
        assert status == 401 and headers["WWW-Authenticate"] == "Bearer"
        with pytest.raises(grpc.RpcError) as failure:
            _grpc(service, body)
        assert failure.value.code() == grpc.StatusCode.UNAUTHENTICATED
        assert service.session("sess-auth") is None
        status, _h, _reply = _post(service, body, headers={"Authorization": "Bearer s3cret"})
        assert status == 200
        exporter = GrpcExporter(endpoint=service.grpc_endpoint, insecure=True,
                                headers={"authorization": "Bearer s3cret"})
        exporter.export(InMemoryOne("sess-auth-2").spans)
        assert service.session("sess-auth").span_count == 1
        assert service.session("sess-auth-2").span_count == 1
