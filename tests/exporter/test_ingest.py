"""App to store: stock OTLP exporters -> service -> exact sessions."""

from __future__ import annotations

import pytest
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpExporter
from opentelemetry.trace import Status, StatusCode

from tests.support import OtlpJsonExporter, provider_with, span_count


def _emit_conversations(provider) -> dict[str, dict]:
    """Three sessions over two threads and two users; returns the expected summaries."""
    tracer = provider.get_tracer("test")
    plan = {
        "sess-a": dict(thread="thrd-1", user="u-1", name="Billing #1", turns=2, fail=False),
        "sess-b": dict(thread="thrd-1", user="u-1", name="Billing #2", turns=1, fail=True),
        "sess-c": dict(thread="thrd-2", user="u-2", name="Refund", turns=3, fail=False),
    }
    for sid, p in plan.items():
        ids = {"session.id": sid, "gen_ai.conversation.id": p["thread"], "user.id": p["user"],
               "session.name": p["name"]}
        for turn in range(p["turns"]):
            with tracer.start_as_current_span(f"turn {turn}", attributes=ids) as root:
                with tracer.start_as_current_span("chat gpt-4o", attributes={
                    **ids, "gen_ai.operation.name": "chat", "gen_ai.request.model": "gpt-4o",
                    "gen_ai.response.model": "gpt-4o-2024-08-06",
                    "gen_ai.usage.input_tokens": 100, "gen_ai.usage.output_tokens": 10,
                }):
                    pass
                with tracer.start_as_current_span("execute_tool lookup", attributes={
                    **ids, "gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "lookup",
                    "gen_ai.usage.cost": 0.5,
                }):
                    pass
                if p["fail"]:
                    root.set_status(Status(StatusCode.ERROR, "boom"))
    return plan


@pytest.mark.parametrize("transport", ["grpc", "grpc-gzip", "http-protobuf", "http-protobuf-gzip", "http-json"])
def test_stock_exporters_store_exact_sessions(service, transport):
    from grpc import Compression as GrpcCompression
    from opentelemetry.exporter.otlp.proto.http import Compression as HttpCompression

    if transport.startswith("grpc"):
        exporter = GrpcExporter(endpoint=service.grpc_endpoint, insecure=True,
                                compression=GrpcCompression.Gzip if "gzip" in transport else None)
    elif transport.startswith("http-protobuf"):
        exporter = HttpExporter(endpoint=service.http_url + "/v1/traces",
                                compression=HttpCompression.Gzip if "gzip" in transport else None)
    else:
        exporter = OtlpJsonExporter(service.http_url + "/v1/traces")
    provider = provider_with(exporter)
    plan = _emit_conversations(provider)
    provider.shutdown()

    ids, total = service.call(service.store.recent_session_ids(limit=10))
    assert total == 3 and sorted(ids) == sorted(plan)
    for sid, p in plan.items():
        s = service.session(sid, with_traces=True)
        assert s.id == sid
        assert (s.user_id, s.thread_id, s.name) == (p["user"], p["thread"], p["name"])
        assert s.trace_count == p["turns"]
        assert s.span_count == 3 * p["turns"]
        assert (s.input_tokens, s.output_tokens) == (100 * p["turns"], 10 * p["turns"])
        assert s.cost_usd == pytest.approx(0.5 * p["turns"] + p["turns"] * (100 * 2.5 + 10 * 10.0) / 1e6)
        assert s.cost_estimated  # the chat spans had no cost attribute
        assert s.models == ["gpt-4o-2024-08-06"] and s.tools == ["lookup"] and s.services == ["test-app"]
        assert s.error_count == (p["turns"] if p["fail"] else 0)
        assert s.status == ("failed" if p["fail"] else "active")
        assert [t.root_name for t in s.traces] == [f"turn {i}" for i in range(p["turns"])]
        assert all(t.span_count == 3 for t in s.traces)
        assert span_count(service.spans(sid)) == 3 * p["turns"]
