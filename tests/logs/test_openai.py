"""GenAI events in a session: the official OpenAI instrumentation
(``opentelemetry-instrumentation-openai-v2``) with message content capture on, calling a
local OpenAI-compatible server inside ``session(...)``; its log events (through the Logs API,
stamped by ``SessionLogProcessor``, sent by the stock OTLP exporter) land in the session
beside its LLM spans, on the span that emitted them."""

from __future__ import annotations

import json
import urllib.request

import openai
import pytest
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

from otel_sessions.processor import SessionSpanProcessor, session
from tests.logs.helpers import grpc_log_exporter, log_provider
from tests.processor.openai_server import OpenAICompatibleServer


def test_genai_events_of_the_openai_instrumentation_land_in_the_session(service, monkeypatch):
    from opentelemetry.instrumentation.openai_v2 import OpenAIInstrumentor

    # content capture on: util-genai 1.1b0 (pinned beside the instrumentation) takes the mode's
    # name; it refuses "true" (older releases' value) and falls back to NO_CONTENT
    monkeypatch.setenv("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "SPAN_AND_EVENT")
    monkeypatch.setenv("OTEL_INSTRUMENTATION_GENAI_EMIT_EVENT", "true")
    tracer_provider = TracerProvider(resource=Resource.create({"service.name": "assistant"}))
    tracer_provider.add_span_processor(SessionSpanProcessor())
    tracer_provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=service.grpc_endpoint,
                                                                            insecure=True)))
    logger_provider = log_provider(grpc_log_exporter(service), service_name="assistant")
    instrumentor = OpenAIInstrumentor()
    instrumentor.instrument(tracer_provider=tracer_provider, logger_provider=logger_provider)
    try:
        with OpenAICompatibleServer() as server:
            client = openai.OpenAI(base_url=server.base_url, api_key="test-key", max_retries=0)
            with session("sess-genai", thread_id="thrd-genai", user_id="u-genai"):
                client.chat.completions.create(model="gpt-test",
                                               messages=[{"role": "user", "content": "Where is my refund?"}])
    finally:
        instrumentor.uninstrument()
        logger_provider.shutdown()
        tracer_provider.shutdown()

    with urllib.request.urlopen(service.http_url + "/v1/sessions/sess-genai/logs") as response:
        body = json.loads(response.read())
    assert body["total"] >= 1
    events = [r for r in body["data"] if r["event_name"]]
    assert events and all(e["event_name"].startswith("gen_ai.") for e in events)
    text = json.dumps(events)
    assert "Where is my refund?" in text  # content capture on: the messages are in the events
    with urllib.request.urlopen(service.http_url + "/v1/sessions/sess-genai") as response:
        summary = json.loads(response.read())
    assert summary["log_count"] == body["total"] and summary["span_count"] >= 1
    assert (summary["thread_id"], summary["user_id"]) == ("thrd-genai", "u-genai")
    with urllib.request.urlopen(service.http_url + "/v1/sessions/sess-genai/spans") as response:
        spans = json.loads(response.read())
    span_ids = {s["spanId"] for rs in spans["resourceSpans"] for ss in rs["scopeSpans"] for s in ss["spans"]}
    assert {e["span_id"] for e in events} <= span_ids  # each event on the LLM span that emitted it
    for event in events:
        assert event["attributes"]["session.id"] == "sess-genai"


pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")
