"""Test helpers: a real otel-sessions service in a background thread, and real OTel clients.

``RunningService`` starts :class:`otel_sessions.exporter.server.Service` on port 0 (gRPC and
HTTP) against the suite's own redis-server, in a thread with its own event loop, so tests
talk to it over real sockets with the stock OTLP exporters.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterable
from typing import Any

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter

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
