"""Clients for the field-correctness tests: the stock OTLP exporters, REST and raw HTTP."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter


def tracer(service_name: str = "field-app"):
    """A real tracer whose finished spans are kept in memory (send them with :func:`send`)."""
    memory = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": service_name}))
    provider.add_span_processor(SimpleSpanProcessor(memory))
    return provider.get_tracer("tests.field"), memory


def send(service, spans, transport: str = "grpc", **options) -> None:
    """Export ``spans`` to ``service`` in one request with the stock OTLP exporter."""
    if transport == "grpc":
        exporter = GrpcExporter(endpoint=service.grpc_endpoint, insecure=True, **options)
    else:
        exporter = HttpExporter(endpoint=service.http_url + "/v1/traces", **options)
    try:
        assert exporter.export(list(spans)) == SpanExportResult.SUCCESS
    finally:
        exporter.shutdown()


def post(service, body: bytes, content_type: str = "application/json", path: str = "/v1/traces",
         headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    """POST ``body``: (status, headers, body) of the answer, errors included."""
    request = urllib.request.Request(service.http_url + path, data=body, method="POST",
                                     headers={"Content-Type": content_type, **(headers or {})})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


def get(service, path: str) -> tuple[int, object]:
    """GET ``path`` on the HTTP port: (status, parsed JSON body)."""
    try:
        with urllib.request.urlopen(service.http_url + path, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")


def session(service, session_id: str) -> dict | None:
    """``GET /v1/sessions/{id}`` (with ``traces``), None when it is 404."""
    status, body = get(service, f"/v1/sessions/{session_id}")
    if status == 404:
        return None
    assert status == 200, body
    return body


def spans_json(service, session_id: str) -> list[dict]:
    """The spans of ``GET /v1/sessions/{id}/spans`` (OTLP/JSON, hex ids)."""
    status, body = get(service, f"/v1/sessions/{session_id}/spans")
    assert status == 200, body
    return [span for rs in body.get("resourceSpans", []) for ss in rs.get("scopeSpans", [])
            for span in ss.get("spans", [])]


def hex_id(value: int, size: int) -> str:
    return value.to_bytes(size, "big").hex()
