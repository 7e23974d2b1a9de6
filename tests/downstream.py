"""Real OTLP receivers for forwarding tests: gRPC ``TraceService/Export`` and
``LogsService/Export``, HTTP ``/v1/traces`` and ``/v1/logs``.

Both record every request they accept, can be stopped and started again on the same port,
and can be told to fail the next requests with a given status (and retry hint).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from concurrent import futures
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import grpc
from google.protobuf import duration_pb2
from google.rpc import error_details_pb2, status_pb2
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from tests.support import all_spans


class _Recorder:
    def __init__(self) -> None:
        self.requests: list[ExportTraceServiceRequest] = []
        self.log_requests: list[ExportLogsServiceRequest] = []
        self.attempts = 0
        self.failures: deque = deque()  # what the next requests answer instead of success
        self.lock = threading.Lock()

    def fail_next(self, *failures) -> None:
        with self.lock:
            self.failures.extend(failures)

    def _take(self, body: bytes):
        with self.lock:
            self.attempts += 1
            if self.failures:
                return self.failures.popleft()
            self.requests.append(ExportTraceServiceRequest.FromString(body))
            return None

    def _take_logs(self, body: bytes) -> None:
        with self.lock:
            self.log_requests.append(ExportLogsServiceRequest.FromString(body))

    def records(self) -> list:
        """Every log record received, in arrival order."""
        with self.lock:
            requests = list(self.log_requests)
        return [r for request in requests for rl in request.resource_logs for sl in rl.scope_logs
                for r in sl.log_records]

    def wait_for_records(self, count: int, timeout: float = 20.0) -> list:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            records = self.records()
            if len(records) >= count:
                return records
            time.sleep(0.02)
        raise AssertionError(f"expected {count} log records downstream, got {len(self.records())}")

    def spans(self) -> list:
        with self.lock:
            requests = list(self.requests)
        return [span for request in requests for span in all_spans(request)]

    def wait_for_spans(self, count: int, timeout: float = 20.0) -> list:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            spans = self.spans()
            if len(spans) >= count:
                return spans
            time.sleep(0.02)
        raise AssertionError(f"expected {count} spans downstream, got {len(self.spans())}")


class GrpcReceiver(_Recorder):
    """An OTLP/gRPC receiver; ``fail_next((code, retry_delay_s or None), ...)``."""

    def __init__(self) -> None:
        super().__init__()
        self.port = 0
        self.server = None

    def _export(self, body: bytes, context) -> bytes:
        failure = self._take(body)
        if failure is not None:
            code, delay = failure
            if delay is not None:
                info = error_details_pb2.RetryInfo(retry_delay=duration_pb2.Duration(
                    seconds=int(delay), nanos=int((delay % 1) * 1e9)))
                status = status_pb2.Status(code=code.value[0], message="try later")
                status.details.add().Pack(info)
                context.set_trailing_metadata((("grpc-status-details-bin", status.SerializeToString()),))
            context.abort(code, "refused by the test")
        return ExportTraceServiceResponse().SerializeToString()

    def _export_logs(self, body: bytes, context) -> bytes:
        self._take_logs(body)
        return ExportLogsServiceResponse().SerializeToString()

    def start(self) -> GrpcReceiver:
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        handler = grpc.method_handlers_generic_handler(
            "opentelemetry.proto.collector.trace.v1.TraceService",
            {"Export": grpc.unary_unary_rpc_method_handler(self._export)})
        logs = grpc.method_handlers_generic_handler(
            "opentelemetry.proto.collector.logs.v1.LogsService",
            {"Export": grpc.unary_unary_rpc_method_handler(self._export_logs)})
        server.add_generic_rpc_handlers((handler, logs))
        self.port = server.add_insecure_port(f"127.0.0.1:{self.port}")
        assert self.port
        server.start()
        self.server = server
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop(None).wait()
            self.server = None

    @property
    def url(self) -> str:
        return f"grpc://127.0.0.1:{self.port}"


class HttpReceiver(_Recorder):
    """An OTLP/HTTP receiver; ``fail_next((status, retry_after header or None), ...)``."""

    def __init__(self) -> None:
        super().__init__()
        self.port = 0
        self.server = None
        self.content_types: list[str] = []

    def start(self) -> HttpReceiver:
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if self.path == "/v1/logs":
                    recorder._take_logs(body)
                    payload = ExportLogsServiceResponse().SerializeToString()
                    self.send_response(200)
                    self.send_header("Content-Type", "application/x-protobuf")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                    return
                if self.path != "/v1/traces":
                    self.send_response(404)
                    self.end_headers()
                    return
                recorder.content_types.append(self.headers.get("Content-Type", ""))
                failure = recorder._take(body)
                if failure is not None:
                    status, retry_after = failure
                    payload = status_pb2.Status(code=14, message="refused by the test").SerializeToString()
                    self.send_response(status)
                    if retry_after is not None:
                        self.send_header("Retry-After", retry_after)
                else:
                    payload = ExportTraceServiceResponse().SerializeToString()
                    self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"
