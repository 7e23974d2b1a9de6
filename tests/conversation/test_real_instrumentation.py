"""Transcripts of a real multi-turn, tool-calling conversation: the official openai client,
instrumented by the official OpenAI instrumentation (``opentelemetry-instrumentation-openai-v2``:
content on spans, content in ``gen_ai.client.inference.operation.details`` events, and the
per-message GenAI events of its semantic-conventions-1.30 code path) and by OpenInference's,
calls the local OpenAI-compatible test server inside ``session(...)``; the spans go through a
real otel-sessions service and the transcript is read back (REST, or the reconstruction with
the log records the instrumentation emitted)."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator

import openai
import pytest
from opentelemetry.exporter.otlp.proto.common._log_encoder import encode_logs
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

from otel_sessions.exporter.lookup.transcript import session_transcript
from otel_sessions.processor import SessionLogProcessor, SessionSpanProcessor, session
from tests.conversation.builders import summary
from tests.processor.openai_server import (
    COMPLETION_TOKENS,
    PROMPT_TOKENS,
    TOOL_ARGUMENTS,
    OpenAICompatibleServer,
)

try:  # the SDK's in-memory log exporter, by its current name
    from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter as InMemoryLogExporter
except ImportError:  # pragma: no cover - older SDKs
    from opentelemetry.sdk._logs.export import InMemoryLogExporter  # type: ignore[no-redef]

SYSTEM = "You are a weather bot."
TOOLS = [{"type": "function", "function": {
    "name": "get_weather", "description": "The weather of a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}]
EXPECTED = [
    ("system", SYSTEM, (), None),
    ("user", "Weather in Paris?", (), None),
    ("assistant", "", ("call_2",), None),
    ("tool", "sunny", (), "call_2"),
    ("assistant", "The tool said: sunny", (), None),
    ("user", "And tomorrow?", (), None),
    ("assistant", "", ("call_6",), None),
    ("tool", "rainy", (), "call_6"),
    ("assistant", "The tool said: rainy", (), None),
]


@pytest.fixture(scope="module")
def llm_server() -> Iterator[OpenAICompatibleServer]:
    with OpenAICompatibleServer() as server:
        yield server


class App:
    """An app: a tracer provider with the session processor exporting to the service over
    OTLP/gRPC, and a logger provider whose records stay in memory."""

    def __init__(self, grpc_endpoint: str) -> None:
        self.provider = TracerProvider(resource=Resource.create({"service.name": "weather-app"}))
        self.provider.add_span_processor(SessionSpanProcessor(baggage=False))
        self.provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=grpc_endpoint, insecure=True)))
        self.tracer = self.provider.get_tracer("tests.conversation")
        self.logs = InMemoryLogExporter()
        self.logger_provider = LoggerProvider(resource=Resource.create({"service.name": "weather-app"}))
        self.logger_provider.add_log_record_processor(SessionLogProcessor())
        self.logger_provider.add_log_record_processor(SimpleLogRecordProcessor(self.logs))

    def log_records(self) -> list:
        """The emitted log records as OTLP (resource, LogRecord) pairs, as a collector receives them."""
        request = encode_logs(list(self.logs.get_finished_logs()))
        return [(rl.resource, record) for rl in request.resource_logs for sl in rl.scope_logs
                for record in sl.log_records]

    def close(self) -> None:
        self.provider.shutdown()
        self.logger_provider.shutdown()


def converse(app: App, base_url: str) -> str:
    """Two user turns, each a tool-calling loop, inside one session under an agent span."""
    client = openai.OpenAI(base_url=base_url, api_key="test-key", max_retries=0)
    results = iter(["sunny", "rainy"])
    with session(user_id="u-1", name="Weather chat") as active, \
            app.tracer.start_as_current_span("invoke_agent weather", attributes={
                "gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "weather"}):
        messages: list[dict] = [{"role": "system", "content": SYSTEM}]
        for question in ("Weather in Paris?", "And tomorrow?"):
            messages.append({"role": "user", "content": question})
            while True:
                reply = client.chat.completions.create(model="gpt-test", messages=messages, tools=TOOLS)
                message = reply.choices[0].message
                if not message.tool_calls:
                    messages.append({"role": "assistant", "content": message.content})
                    break
                messages.append({"role": "assistant", "content": message.content,
                                 "tool_calls": [call.model_dump() for call in message.tool_calls]})
                for call in message.tool_calls:
                    with app.tracer.start_as_current_span("execute_tool get_weather", attributes={
                            "gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "get_weather",
                            "gen_ai.tool.call.id": call.id}):
                        result = next(results)
                    messages.append({"role": "tool", "tool_call_id": call.id, "content": result})
    return active.session_id


def _messages(service, session_id: str) -> list[dict]:
    with urllib.request.urlopen(f"{service.http_url}/v1/sessions/{session_id}/messages") as response:
        return json.loads(response.read())["data"]


def _check(messages: list[dict], session_id: str, model_calls: int = 4) -> None:
    assert summary(messages) == EXPECTED
    assistant = [m for m in messages if m["role"] == "assistant"]
    assert len(assistant) == model_calls
    assert messages[2]["tool_calls"][0]["name"] == "get_weather"
    assert messages[2]["tool_calls"][0]["arguments"] == TOOL_ARGUMENTS
    assert all(m["agent"] == "weather" and m["session_id"] == session_id for m in messages)
    assert all(m["model"] == "gpt-test" for m in assistant)
    assert all(m["usage"] == {"input_tokens": PROMPT_TOKENS, "output_tokens": COMPLETION_TOKENS} for m in assistant)
    assert [m["finish_reason"] for m in assistant] == ["tool_calls", "stop", "tool_calls", "stop"]
    assert len({m["span_id"] for m in assistant}) == 4  # one model call each


@pytest.fixture()
def app(service) -> Iterator[App]:
    running = App(service.grpc_endpoint)
    yield running
    running.close()


def test_openai_v2_content_on_spans(service, app, llm_server, monkeypatch):
    from opentelemetry.instrumentation.openai_v2 import OpenAIInstrumentor

    monkeypatch.setenv("OTEL_SEMCONV_STABILITY_OPT_IN", "gen_ai_latest_experimental")
    monkeypatch.setenv("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "span_only")
    instrumentor = OpenAIInstrumentor()
    instrumentor.instrument(tracer_provider=app.provider, logger_provider=app.logger_provider)
    try:
        session_id = converse(app, llm_server.base_url)
    finally:
        instrumentor.uninstrument()
    messages = _messages(service, session_id)
    _check(messages, session_id)
    assert {m["source"] for m in messages} == {"gen_ai"}


def test_openai_v2_content_in_events(service, app, llm_server, monkeypatch):
    """Event mode: content only in ``gen_ai.client.inference.operation.details`` log records."""
    from opentelemetry.instrumentation.openai_v2 import OpenAIInstrumentor

    monkeypatch.setenv("OTEL_SEMCONV_STABILITY_OPT_IN", "gen_ai_latest_experimental")
    monkeypatch.setenv("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "event_only")
    instrumentor = OpenAIInstrumentor()
    instrumentor.instrument(tracer_provider=app.provider, logger_provider=app.logger_provider)
    try:
        session_id = converse(app, llm_server.base_url)
    finally:
        instrumentor.uninstrument()
    records = app.log_records()
    assert {r.event_name for _resource, r in records} == {"gen_ai.client.inference.operation.details"}
    assert _messages(service, session_id) == []  # the spans hold no content
    traces = service.spans(session_id)
    messages = session_transcript(session_id, traces, logs=records).to_json()["data"]
    _check(messages, session_id)
    assert {m["source"] for m in messages} == {"gen_ai.events"}


def test_openai_v2_per_message_events(service, app, llm_server):
    """The per-message GenAI events (``gen_ai.user.message`` ... ``gen_ai.choice``) of the
    instrumentation's semantic-conventions-1.30 code path, content capture on."""
    try:
        from opentelemetry.instrumentation.openai_v2.instruments import Instruments
        from opentelemetry.instrumentation.openai_v2.patch import chat_completions_create_v_old
        from opentelemetry.metrics import get_meter_provider
        from wrapt import wrap_function_wrapper
    except ImportError as exc:  # pragma: no cover - a release without that code path
        pytest.skip(f"openai-v2 without its 1.30 code path: {exc}")
    from opentelemetry._logs import get_logger
    from opentelemetry.instrumentation.utils import unwrap

    tracer = app.provider.get_tracer("opentelemetry.instrumentation.openai_v2")
    logger = get_logger("opentelemetry.instrumentation.openai_v2", logger_provider=app.logger_provider)
    instruments = Instruments(get_meter_provider().get_meter("tests"))
    wrap_function_wrapper("openai.resources.chat.completions", "Completions.create",
                          chat_completions_create_v_old(tracer, logger, instruments, True))
    try:
        session_id = converse(app, llm_server.base_url)
    finally:
        unwrap(openai.resources.chat.completions.Completions, "create")
    records = app.log_records()
    names = [r.event_name for _resource, r in records]
    assert {"gen_ai.system.message", "gen_ai.user.message", "gen_ai.assistant.message", "gen_ai.tool.message",
            "gen_ai.choice"} <= set(names)
    messages = session_transcript(session_id, service.spans(session_id), logs=records).to_json()["data"]
    assert summary(messages) == EXPECTED
    assistant = [m for m in messages if m["role"] == "assistant"]
    assert [m["finish_reason"] for m in assistant] == ["tool_calls", "stop", "tool_calls", "stop"]
    assert all(m["usage"] == {"input_tokens": PROMPT_TOKENS, "output_tokens": COMPLETION_TOKENS} for m in assistant)


def test_openinference(service, app, llm_server):
    from openinference.instrumentation.openai import OpenAIInstrumentor

    instrumentor = OpenAIInstrumentor()
    instrumentor.instrument(tracer_provider=app.provider)
    try:
        session_id = converse(app, llm_server.base_url)
    finally:
        instrumentor.uninstrument()
    messages = _messages(service, session_id)
    assert summary(messages) == EXPECTED
    assistant = [m for m in messages if m["role"] == "assistant"]
    assert all(m["model"] == "gpt-test" for m in assistant)
    assert all(m["usage"] == {"input_tokens": PROMPT_TOKENS, "output_tokens": COMPLETION_TOKENS} for m in assistant)
    assert all(m["agent"] == "weather" for m in messages)
    assert {m["source"] for m in messages} == {"openinference"}
