"""Test helpers: a real otel-sessions service in a background thread, and real OTel clients.

``RunningService`` starts :class:`otel_sessions.exporter.server.Service` on port 0 (gRPC and
HTTP) against the suite's own redis-server, in a thread with its own event loop, so tests
talk to it over real sockets with the stock OTLP exporters.
"""

from __future__ import annotations

import asyncio
import json
import os
import queue
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable
from typing import Any

from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client import REGISTRY

from otel_sessions.exporter.serve.process import Service
from otel_sessions.exporter.serve.settings import Settings
from otel_sessions.exporter.store.sessions import SessionStore


class RunningService:
    def __init__(self, redis_url: str, extra_routes: Iterable[Callable] = (), **settings: Any) -> None:
        options = {"grpc_listen": "127.0.0.1:0", "http_listen": "127.0.0.1:0", "redis_url": redis_url}
        options.update(settings)
        self.settings = Settings.resolve(options, env={})
        self.redis_url = redis_url
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.service: Service | None = None
        self.extra_routes = list(extra_routes)

    def start(self) -> RunningService:
        self.thread.start()
        self.service = Service(self.settings, self.redis_url, extra_http_routes=self.extra_routes)
        listening = self.call(self.service.start())
        self.grpc_endpoint = f"127.0.0.1:{listening.grpc[1]}"
        self.http_url = f"http://127.0.0.1:{listening.http[1]}"
        return self

    def call(self, coroutine, timeout: float = 30.0):
        """Run a coroutine on the service's loop and return its result."""
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)

    @property
    def store(self):
        return self.service.store

    def session(self, session_id: str, with_traces: bool = False):
        return self.call(self.store.get_session(session_id, with_traces=with_traces))

    def spans(self, session_id: str):
        return self.call(self.store.get_spans(session_id))

    def stop(self) -> None:
        if self.service is not None:
            self.call(self.service.stop(grace=2.0))
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)

    def __enter__(self) -> RunningService:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def open_store(redis_url: str, **options: Any) -> SessionStore:
    """A store on ``redis_url`` with the service's settings (defaults, or ``options``)."""
    settings = Settings.resolve({"redis_url": redis_url, **options}, env={})
    return SessionStore.connect(redis_url, settings.store_settings())


def provider_with(exporter: SpanExporter, service_name: str = "test-app") -> TracerProvider:
    """A real TracerProvider exporting synchronously through ``exporter``."""
    provider = TracerProvider(resource=Resource.create({"service.name": service_name}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider


def span_count(traces_data) -> int:
    return sum(len(ss.spans) for rs in traces_data.resource_spans for ss in rs.scope_spans)


def all_spans(traces_data) -> list:
    return [span for rs in traces_data.resource_spans for ss in rs.scope_spans for span in ss.spans]


class OtlpJsonExporter(SpanExporter):
    """OTLP/HTTP JSON client: the stock exporter's own encoder, written as OTLP/JSON.

    The official JSON exporter package (``opentelemetry-exporter-otlp-json-http``) pins an
    older ``opentelemetry-exporter-otlp-common`` than the protobuf exporters of the same
    release, so the two cannot be installed together; this client produces the same bytes.
    """

    def __init__(self, endpoint: str, headers: dict[str, str] | None = None) -> None:
        self.endpoint = endpoint
        self.headers = {"Content-Type": "application/json", **(headers or {})}
        self.responses: list = []

    def export(self, spans):  # type: ignore[override]
        import urllib.request

        from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
        from opentelemetry.sdk.trace.export import SpanExportResult

        from otel_sessions.exporter.otlp_json import message_to_json

        body = message_to_json(encode_spans(spans))
        request = urllib.request.Request(self.endpoint, data=body, headers=self.headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                self.responses.append((response.status, response.read()))
                return SpanExportResult.SUCCESS
        except OSError:
            return SpanExportResult.FAILURE

    def shutdown(self) -> None:
        pass


# --- real clients and waits ---
def tracer(service_name: str = "test-app"):
    """A real tracer whose finished spans are kept in memory (send them with :func:`send`)."""
    memory = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": service_name}))
    provider.add_span_processor(SimpleSpanProcessor(memory))
    return provider.get_tracer("tests.stacks"), memory


def send(endpoint: str, spans) -> None:
    """Export ``spans`` with the stock OTLP/gRPC exporter (one request)."""
    from opentelemetry.sdk.trace.export import SpanExportResult

    assert GrpcExporter(endpoint=endpoint, insecure=True).export(list(spans)) == SpanExportResult.SUCCESS


def wait_until(condition, timeout: float = 20.0, message: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {message}")


def metric(name: str, **labels) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def attributes(span) -> dict:
    """An OTLP span's attributes as a plain dict (string, int, bool and double values)."""
    out = {}
    for kv in span.attributes:
        kind = kv.value.WhichOneof("value")
        out[kv.key] = getattr(kv.value, kind) if kind else None
    return out


# --- the otel-sessions command, as users run it ---
def cli(*args: str, server: str | None = None, timeout: float = 60, env: dict | None = None,
        expect: int | None = 0) -> subprocess.CompletedProcess:
    """Run ``python -m otel_sessions.exporter.cli ARGS``; checks the exit status when ``expect`` is set."""
    environment = {**os.environ, **(env or {})}
    environment.pop("OTEL_SESSIONS_QUERY_TOKEN", None)
    if server is not None:
        environment["OTEL_SESSIONS_SERVER"] = server
    result = subprocess.run([sys.executable, "-m", "otel_sessions.exporter.cli", *args], capture_output=True,
                            text=True, timeout=timeout, env=environment)
    if expect is not None:
        assert result.returncode == expect, (args, result.returncode, result.stdout, result.stderr)
    return result


def cli_json(*args: str, server: str | None = None):
    return json.loads(cli(*args, "--json", server=server).stdout)


class LineReader:
    """Lines of a running process's stdout, read in a thread, with a deadline per wait."""

    def __init__(self, process: subprocess.Popen) -> None:
        self.process = process
        self.lines: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        for line in self.process.stdout:
            self._queue.put(line.rstrip("\n"))
        self._queue.put(None)

    def wait_for(self, predicate, timeout: float = 60) -> str:
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            assert remaining > 0, f"no matching line within {timeout}s; got {self.lines}"
            try:
                line = self._queue.get(timeout=remaining)
            except queue.Empty:
                continue
            assert line is not None, f"process ended; output: {self.lines}"
            self.lines.append(line)
            if predicate(line):
                return line


# --- HTTP lookups ---
def http(method: str, url: str, headers: dict | None = None) -> tuple[int, dict | bytes | None, dict]:
    """One request; returns (status, parsed JSON or raw bytes or None, headers)."""
    request = urllib.request.Request(url, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            status, body, head = response.status, response.read(), dict(response.headers)
    except urllib.error.HTTPError as exc:
        status, body, head = exc.code, exc.read(), dict(exc.headers)
    if not body:
        return status, None, head
    if head.get("Content-Type", "").startswith("application/json"):
        return status, json.loads(body), head
    return status, body, head


def get(service, path: str, expect: int = 200, **kwargs):
    status, body, _headers = http("GET", service.http_url + path, **kwargs)
    assert status == expect, (path, status, body)
    return body
