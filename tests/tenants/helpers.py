"""Helpers of the tenant tests: a tenants file of two tenants (a token per scope each, and an
operator's metrics token), and spans sent with the stock OTLP exporters under fixed trace ids,
so both tenants write the same session ids and the same trace ids."""

from __future__ import annotations

import json
from pathlib import Path

from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.id_generator import IdGenerator

from otel_sessions.exporter.tenants import token_sha256

TENANTS = ("team-a", "team-b")
SCOPES = ("ingest", "read", "admin")
#: a token per tenant and scope: TOKENS["team-a"]["read"]
TOKENS = {tenant: {scope: f"tok-{tenant}-{scope}" for scope in SCOPES} for tenant in TENANTS}
METRICS_TOKEN = "tok-ops-metrics"
#: the same trace ids in both tenants
TRACE_GRPC = 0x0AF7651916CD43DD8448EB211C80319C
TRACE_HTTP = 0x0BF7651916CD43DD8448EB211C80319D


def write_tenants_file(folder: Path, quotas: dict[str, dict] | None = None, as_json: bool = False) -> Path:
    """The tenants file of :data:`TENANTS` (YAML, or JSON), with ``quotas`` by tenant name."""
    tenants = []
    for tenant in TENANTS:
        entry = {"name": tenant, "tokens": [{"sha256": token_sha256(TOKENS[tenant][scope]), "scopes": [scope]}
                                            for scope in SCOPES]}
        if quotas and tenant in quotas:
            entry["quota"] = quotas[tenant]
        tenants.append(entry)
    tenants.append({"name": "ops", "tokens": [{"sha256": token_sha256(METRICS_TOKEN), "scopes": ["metrics"]}]})
    if as_json:
        path = folder / "tenants.json"
        path.write_text(json.dumps({"tenants": tenants}))
        return path
    lines = ["tenants:"]
    for entry in tenants:
        lines.append(f"  - name: {entry['name']}")
        lines.append("    tokens:")
        for token in entry["tokens"]:
            lines.append(f"      - sha256: {token['sha256']}   # hex SHA-256 of the token")
            lines.append(f"        scopes: [{', '.join(token['scopes'])}]")
        if "quota" in entry:
            lines.append("    quota: {" + ", ".join(f"{k}: {v}" for k, v in entry["quota"].items()) + "}")
    path = folder / "tenants.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


def bearer(token: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"} if token else {}


class FixedTraceIds(IdGenerator):
    """Every span in the trace id given; span ids counted up from ``first_span``."""

    def __init__(self, trace_id: int, first_span: int = 1) -> None:
        self.trace_id = trace_id
        self.next_span = first_span

    def generate_trace_id(self) -> int:
        return self.trace_id

    def generate_span_id(self) -> int:
        self.next_span += 1
        return self.next_span


def send_spans(exporter, trace_id: int, tenant: str, session_id: str, spans: int, first_span: int = 1,
               **ids) -> None:
    """``spans`` spans of ``session_id`` in trace ``trace_id`` through ``exporter`` (one request
    per span, as the SimpleSpanProcessor exports), named and served by ``tenant``."""
    provider = TracerProvider(resource=Resource.create({"service.name": f"svc-{tenant}"}),
                              id_generator=FixedTraceIds(trace_id, first_span))
    processor = _Checked(exporter)
    provider.add_span_processor(processor)
    tracer = provider.get_tracer("tests.tenants")
    attributes = {"session.id": session_id, **ids}
    with tracer.start_as_current_span(f"op-{tenant}", attributes=attributes):
        for n in range(spans - 1):
            tracer.start_span(f"step-{tenant}-{n}", attributes=attributes).end()
    provider.shutdown()
    assert processor.failures == 0, f"{processor.failures} exports of {tenant} failed"


class _Checked(SimpleSpanProcessor):
    """A SimpleSpanProcessor that counts failed exports (the stock one only logs them)."""

    def __init__(self, exporter) -> None:
        super().__init__(exporter)
        self.exporter = exporter
        self.failures = 0

    def on_end(self, span) -> None:
        if self.exporter.export([span]) != SpanExportResult.SUCCESS:
            self.failures += 1


def grpc_exporter(service, token: str | None, **options) -> GrpcExporter:
    headers = (("authorization", f"Bearer {token}"),) if token else None
    return GrpcExporter(endpoint=service.grpc_endpoint, insecure=True, headers=headers, **options)


def http_exporter(service, token: str | None, **options) -> HttpExporter:
    return HttpExporter(endpoint=service.http_url + "/v1/traces", headers=bearer(token), **options)
