"""Bounded resources: slow clients are cut off, and the bytes in flight across all requests
stay within ``--max-inflight-bytes`` (real servers, real sockets, real exporters)."""

from __future__ import annotations

import http.client
import os
import re
import socket
import subprocess
import sys
import threading
import time
import urllib.request

import grpc
import pytest
from google.rpc import error_details_pb2, status_pb2
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpExporter
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1.trace_pb2 import TracesData
from opentelemetry.sdk.trace.export import SpanExportResult

from otel_sessions.exporter.errors import Overloaded
from otel_sessions.exporter.ingest.inflight import InflightBytes
from otel_sessions.exporter.serve.settings import Settings, SettingsError
from tests.ingest.test_bad_input import InMemoryOne
from tests.support import RunningService

EXPORT = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"
MB = 1_000_000
MiB = 1024 * 1024


# --- settings and the counter ---------------------------------------------------------------------

def test_bound_settings():
    defaults = Settings.resolve({}, env={})
    assert defaults.max_inflight_bytes == 2 * defaults.max_request_bytes == 128 * MiB
    assert defaults.body_timeout == 60 and defaults.connection_idle_timeout == 60
    s = Settings.resolve({"max_request_bytes": "1000000", "max_inflight_bytes": "2.5x"}, env={})
    assert s.max_inflight_bytes == 2_500_000
    env = {"OTEL_SESSIONS_MAX_INFLIGHT_BYTES": "300000000", "OTEL_SESSIONS_BODY_TIMEOUT": "500ms",
           "OTEL_SESSIONS_CONNECTION_IDLE_TIMEOUT": "2m"}
    s = Settings.resolve({}, env=env)
    assert (s.max_inflight_bytes, s.body_timeout, s.connection_idle_timeout) == (300_000_000, 0.5, 120)
    for raw, problem in (("1000", "at least --max-request-bytes"), ("0.5x", "at least --max-request-bytes"),
                         ("lots", "not a whole number of bytes")):
        with pytest.raises(SettingsError, match=f"--max-inflight-bytes / OTEL_SESSIONS_MAX_INFLIGHT_BYTES: .*{problem}"):
            Settings.resolve({"max_inflight_bytes": raw}, env={})
    for name, flag in (("body_timeout", "--body-timeout"), ("connection_idle_timeout", "--connection-idle-timeout")):
        with pytest.raises(SettingsError, match=flag):
            Settings.resolve({name: "0s"}, env={})


def test_leases_stay_within_the_bound():
    pool = InflightBytes(100)
    first, second = pool.lease(), pool.lease()
    first.resize(60)
    with pytest.raises(Overloaded):
        second.resize(41)
    assert second.size == 0 and pool.current == 60
    second.grow(40)
    assert pool.current == pool.peak == 100
    first.resize(10)  # shrinking always succeeds
    assert pool.current == 50
    with first, second:
        pass
    assert pool.current == 0 and pool.peak == 100
    first.release()  # twice is harmless
    assert pool.current == 0


# --- slow clients --------------------------------------------------------------------------------

def _trickle(address: tuple[str, int], head: bytes, drip: bytes, outcome: dict) -> None:
    """Send ``head`` at once, then ``drip`` one byte per 100 ms until the server closes the
    connection; record when, and what it answered."""
    started = time.monotonic()
    received = b""
    with socket.create_connection(address, timeout=10) as sock:
        sock.settimeout(0.1)
        if head:
            sock.sendall(head)
        for byte in drip:
            try:
                sock.sendall(bytes((byte,)))
            except OSError:  # reset: closed
                break
            try:
                data = sock.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                break
            if not data:  # orderly close
                break
            received += data
            while True:  # the rest of the answer, up to the close
                try:
                    more = sock.recv(65536)
                except (TimeoutError, OSError):
                    more = b""
                if not more:
                    break
                received += more
            break
    outcome["seconds"] = time.monotonic() - started
    outcome["received"] = received


def test_slow_headers_and_slow_body_are_cut_off_while_others_export(redis_url):
    with RunningService(redis_url, body_timeout="3s", connection_idle_timeout="3s") as running:
        host, port = running.http_url.removeprefix("http://").split(":")
        address = (host, int(port))
        slow_head, slow_body = {}, {}
        # headers a byte at a time, never finished
        head_thread = threading.Thread(target=_trickle, args=(
            address, b"", b"POST /v1/traces HTTP/1.1\r\nHost: localhost\r\nX-Slow: " + b"a" * 500, slow_head))
        # whole headers, then a 1000-byte body a byte at a time
        body_thread = threading.Thread(target=_trickle, args=(
            address, b"POST /v1/traces HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/x-protobuf\r\n"
                     b"Content-Length: 1000\r\n\r\n", b"\n" * 1000, slow_body))
        head_thread.start()
        body_thread.start()
        time.sleep(0.5)
        # meanwhile the stock exporters go through, on both ports
        http_exporter = HttpExporter(endpoint=running.http_url + "/v1/traces", timeout=5)
        assert http_exporter.export(InMemoryOne("sess-while-slow-http").spans) == SpanExportResult.SUCCESS
        grpc_exporter = GrpcExporter(endpoint=running.grpc_endpoint, insecure=True, timeout=5)
        assert grpc_exporter.export(InMemoryOne("sess-while-slow-grpc").spans) == SpanExportResult.SUCCESS
        assert head_thread.is_alive() and body_thread.is_alive(), "the exports waited for the slow clients"
        head_thread.join(15)
        body_thread.join(15)
        assert not head_thread.is_alive() and not body_thread.is_alive()

        # the head: closed at the idle timeout without an answer (it never made a request)
        assert 2.5 <= slow_head["seconds"] < 8.0, slow_head
        assert slow_head["received"] == b""
        # the body: 408 with a google.rpc.Status, then closed
        assert 2.5 <= slow_body["seconds"] < 8.0, slow_body
        answer = slow_body["received"]
        assert answer.startswith(b"HTTP/1.1 408 "), answer[:200]
        headers, _, body = answer.partition(b"\r\n\r\n")
        assert b"Connection: close" in headers
        status = status_pb2.Status.FromString(body)
        assert status.code == grpc.StatusCode.DEADLINE_EXCEEDED.value[0]
        assert "not received within 3 s" in status.message

        assert running.session("sess-while-slow-http").span_count == 1
        assert running.session("sess-while-slow-grpc").span_count == 1
        assert running.service.inflight.current == 0  # the stalled body's lease went back
        metrics = _metrics(running.http_url)
        assert 'otel_sessions_export_requests_total{outcome="timeout",transport="http"} 1.0' in metrics


def test_an_idle_keep_alive_connection_is_closed(redis_url):
    with RunningService(redis_url, connection_idle_timeout="1s") as running:
        connection = http.client.HTTPConnection(running.http_url.removeprefix("http://"), timeout=5)
        connection.request("GET", "/healthz")
        assert connection.getresponse().read() == b'{"status": "ok"}'
        time.sleep(1.6)
        assert connection.sock.recv(1) == b""  # the server closed it
        connection.close()


# --- bytes in flight -----------------------------------------------------------------------------

def _big_request(session_id: str, target_bytes: int, seed: int) -> ExportTraceServiceRequest:
    """One session of spans with a large (compressible) attribute each, about ``target_bytes``."""
    request = ExportTraceServiceRequest()
    rs = request.resource_spans.add()
    kv = rs.resource.attributes.add()
    kv.key, kv.value.string_value = "service.name", "big-app"
    scope = rs.scope_spans.add()
    piece = 20_000
    filler = (f"{session_id} filler text " * (piece // 20))[:piece]
    for i in range(max(1, target_bytes // (piece + 100))):
        span = scope.spans.add()
        span.trace_id = (seed * 1_000_003 + i // 50 + 1).to_bytes(16, "big")
        span.span_id = (seed * 1_000_003 + i + 1).to_bytes(8, "big")
        span.name = f"span-{i}"
        span.start_time_unix_nano = 1_700_000_000_000_000_000 + i * 1000
        span.end_time_unix_nano = span.start_time_unix_nano + 500
        for key, value in (("session.id", session_id), ("payload", f"{i:08d}" + filler)):
            attribute = span.attributes.add()
            attribute.key, attribute.value.string_value = key, value
    return request


def _retry_after_s(error: grpc.RpcError) -> float | None:
    for key, value in error.trailing_metadata() or ():
        if key == "grpc-status-details-bin":
            status = status_pb2.Status.FromString(value)
            for detail in status.details:
                info = error_details_pb2.RetryInfo()
                if detail.Unpack(info):
                    return info.retry_delay.seconds + info.retry_delay.nanos / 1e9
    return None


def _post(url: str, body: bytes, timeout: float = 60) -> tuple[int, dict[str, str], bytes]:
    host = url.removeprefix("http://")
    connection = http.client.HTTPConnection(host, timeout=timeout)
    try:
        connection.request("POST", "/v1/traces", body=body, headers={"Content-Type": "application/x-protobuf"})
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        connection.close()


def _metrics(http_url: str) -> str:
    with urllib.request.urlopen(http_url + "/metrics", timeout=10) as response:
        return response.read().decode()


def _gauge(metrics: str, name: str) -> float:
    return float(re.search(rf"^{name} (\S+)$", metrics, flags=re.M).group(1))


def test_concurrent_large_bodies_stay_within_the_inflight_bound(redis_url):
    bound = 48 * MiB
    with RunningService(redis_url, max_request_bytes=str(24 * MiB), max_inflight_bytes=str(bound)) as running:
        requests = {f"sess-big-{n}": _big_request(f"sess-big-{n}", 20 * MB, n) for n in range(8)}
        bodies = {sid: request.SerializeToString() for sid, request in requests.items()}
        assert all(19 * MB < len(body) < 24 * MiB for body in bodies.values())
        channel = grpc.insecure_channel(running.grpc_endpoint, options=[
            ("grpc.max_send_message_length", 64 * MiB), ("grpc.max_receive_message_length", 64 * MiB)])
        export = channel.unary_unary(EXPORT)
        results: dict[str, tuple] = {}
        barrier = threading.Barrier(8)

        def send(n: int, sid: str) -> None:
            barrier.wait()
            if n % 2:
                try:
                    export(bodies[sid], timeout=60)
                    results[sid] = ("grpc", 200, None)
                except grpc.RpcError as error:
                    results[sid] = ("grpc", error.code(), _retry_after_s(error))
            else:
                status, headers, _ = _post(running.http_url, bodies[sid])
                results[sid] = ("http", status, headers.get("Retry-After"))

        threads = [threading.Thread(target=send, args=(n, sid)) for n, sid in enumerate(bodies)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(120)
        assert len(results) == 8, results

        refused = [sid for sid, (_transport, status, _) in results.items() if status != 200]
        for sid in refused:
            transport, status, retry_after = results[sid]
            if transport == "http":
                assert status == 503 and retry_after == "2", results[sid]
            else:
                assert status == grpc.StatusCode.UNAVAILABLE and retry_after == 2.0, results[sid]
        assert refused, "8 x 20 MB at once within 48 MiB: some must have been refused"
        assert len(refused) < 8
        inflight = running.service.inflight
        assert 0 < inflight.peak <= bound
        assert inflight.current == 0
        metrics = _metrics(running.http_url)
        assert _gauge(metrics, "otel_sessions_inflight_bytes") == 0
        assert 0 < _gauge(metrics, "otel_sessions_inflight_bytes_peak") <= bound

        # the refused ones go through when retried one at a time, and everything is intact
        for sid in refused:
            status, _, _ = _post(running.http_url, bodies[sid])
            assert status == 200
        channel.close()
        for sid, request in requests.items():
            sent = {(s.span_id, s.SerializeToString(deterministic=True))
                    for s in request.resource_spans[0].scope_spans[0].spans}
            stored = running.spans(sid)
            assert isinstance(stored, TracesData)
            got = {(s.span_id, s.SerializeToString(deterministic=True))
                   for rs in stored.resource_spans for ss in rs.scope_spans for s in ss.spans}
            assert got == sent, sid
            assert running.session(sid).span_count == len(sent)


def _vm(pid: int, field: str) -> int:
    """A /proc/<pid>/status figure, in bytes."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise AssertionError(field)


def test_memory_stays_bounded_with_the_default_bound(redis_url):
    """8 x 60 MB offered at once to a ``serve`` process with its default settings: its peak
    resident memory stays well under 1 GB."""
    process = subprocess.Popen(
        [sys.executable, "-m", "otel_sessions.exporter.cli", "serve", "--redis-url", redis_url,
         "--grpc-listen", "127.0.0.1:0", "--http-listen", "127.0.0.1:0"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={k: v for k, v in os.environ.items() if not k.startswith("OTEL_SESSIONS_")})
    try:
        http_url = None
        for line in process.stdout:
            if m := re.search(r"OTLP/HTTP on (http://[\d.]+:\d+)", line):
                http_url = m.group(1)
            if line.strip().endswith("ready"):
                break
        assert http_url, "serve did not start"
        threading.Thread(target=lambda: [None for _ in process.stdout], daemon=True).start()
        bodies = [_big_request(f"sess-mem-{n}", 60 * MB, 100 + n).SerializeToString() for n in range(8)]
        assert all(58 * MB < len(body) < 64 * MiB for body in bodies)
        before = _vm(process.pid, "VmRSS")
        statuses: list[int] = []
        barrier = threading.Barrier(8)

        def send(body: bytes) -> None:
            barrier.wait()
            statuses.append(_post(http_url, body, timeout=120)[0])

        threads = [threading.Thread(target=send, args=(body,)) for body in bodies]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(180)
        peak = _vm(process.pid, "VmHWM")
        after = _vm(process.pid, "VmRSS")
        assert sorted(set(statuses)) in ([200], [200, 503]), statuses
        metrics = _metrics(http_url)
        assert _gauge(metrics, "otel_sessions_inflight_bytes_peak") <= 128 * MiB  # the default, 2x 64 MiB
        print(f"serve RSS before {before / MiB:.0f} MiB, peak {peak / MiB:.0f} MiB, after {after / MiB:.0f} MiB; "
              f"statuses {sorted(statuses)}")
        assert peak < 768 * MiB, f"peak RSS {peak / MiB:.0f} MiB"  # measured: about 540 MiB
    finally:
        process.terminate()
        process.wait(30)
