"""What the web page tests look at: the demo conversation (``otel-sessions demo``: one thread
of three sessions, a router handing off to support and billing agents, a tool call that fails
with "payment gateway timed out after 10s"), and one more session sent here with GenAI
message content (``gen_ai.input.messages`` / ``gen_ai.output.messages``, semantic
conventions 1.37), another plan in its metadata, a failing tool call and a failed root span.
"""

from __future__ import annotations

import json
import time

from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.trace import Status, StatusCode, set_span_in_context

from otel_sessions.exporter.cli.demo import DemoConversation, run_demo
from otel_sessions.processor import SessionSpanProcessor, session

WEATHER_SESSION = "sess_web_weather"
WEATHER_ERROR = "weather service unavailable"
WEATHER_QUESTION = "What is the weather in Paris?"
WEATHER_ANSWER = "Sorry, I cannot reach the weather service right now."


def _messages(*messages: dict) -> str:
    return json.dumps(list(messages))


def send_weather_session(http_url: str) -> None:
    """One failed session (plan=free) of a weather agent: a model call asking for a tool, the
    tool failing, a model call answering from the failure; spans through the stock OTLP/HTTP
    exporter with the in-app span processor."""
    provider = TracerProvider(resource=Resource.create({"service.name": "weather-bot",
                                                        "deployment.environment.name": "staging"}))
    provider.add_span_processor(SessionSpanProcessor())  # before the exporting processor, as in an app
    provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=http_url + "/v1/traces", timeout=10)))
    tracer = provider.get_tracer("tests.web")
    ns = time.time_ns() - 60 * 1_000_000_000
    at = lambda ms: ns + int(ms * 1_000_000)  # noqa: E731
    system = {"role": "system", "parts": [{"type": "text", "content": "You are a weather helper."}]}
    user = {"role": "user", "parts": [{"type": "text", "content": WEATHER_QUESTION}]}
    call = {"role": "assistant", "parts": [{"type": "tool_call", "id": "call_w1", "name": "get_weather",
                                            "arguments": {"city": "Paris"}}], "finish_reason": "tool_calls"}
    result = {"role": "tool", "parts": [{"type": "tool_call_response", "id": "call_w1",
                                         "response": "error: " + WEATHER_ERROR}]}
    answer = {"role": "assistant", "parts": [{"type": "text", "content": WEATHER_ANSWER}], "finish_reason": "stop"}
    with session(WEATHER_SESSION, thread_id="thrd_web_weather", user_id="u-web", name="Weather question",
                 metadata={"plan": "free", "channel": "web"}):
        root = tracer.start_span("invoke_agent weather_agent", start_time=at(0), attributes={
            "gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "weather_agent"})
        parent = set_span_in_context(root)
        first = tracer.start_span("chat gpt-4o", context=parent, start_time=at(10), attributes={
            "gen_ai.operation.name": "chat", "gen_ai.request.model": "gpt-4o", "gen_ai.usage.input_tokens": 120,
            "gen_ai.usage.output_tokens": 20, "gen_ai.input.messages": _messages(system, user),
            "gen_ai.output.messages": _messages(call)})
        first.end(end_time=at(900))
        tool = tracer.start_span("execute_tool get_weather", context=parent, start_time=at(910), attributes={
            "gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "get_weather", "gen_ai.tool.call.id": "call_w1",
            "gen_ai.tool.call.arguments": json.dumps({"city": "Paris"})})
        tool.add_event("exception", {"exception.type": "ConnectionError", "exception.message": WEATHER_ERROR}, timestamp=at(1400))
        tool.set_status(Status(StatusCode.ERROR, WEATHER_ERROR))
        tool.end(end_time=at(1410))
        second = tracer.start_span("chat gpt-4o", context=parent, start_time=at(1420), attributes={
            "gen_ai.operation.name": "chat", "gen_ai.request.model": "gpt-4o", "gen_ai.usage.input_tokens": 180,
            "gen_ai.usage.output_tokens": 25, "gen_ai.input.messages": _messages(system, user, call, result),
            "gen_ai.output.messages": _messages(answer)})
        second.end(end_time=at(2300))
        root.set_status(Status(StatusCode.ERROR, "no forecast"))
        root.end(end_time=at(2310))
    provider.shutdown()


MARKUP_SESSION = "sess_web_<markup>"
MARKUP_NAME = '<img src=x id=injected onerror="window.injected=1"><b>bold</b>'


def send_markup_session(http_url: str) -> None:
    """A session whose id, name, user and span name are HTML: the page must show them as text."""
    provider = TracerProvider(resource=Resource.create({"service.name": "<svc>"}))
    provider.add_span_processor(SessionSpanProcessor())
    provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=http_url + "/v1/traces", timeout=10)))
    with session(MARKUP_SESSION, user_id="<u>", name=MARKUP_NAME):
        provider.get_tracer("tests.web").start_span('<script>window.injected=2</script>').end()
    provider.shutdown()


def load(http_url: str) -> DemoConversation:
    """The demo (seeded, so its ids are known), the weather session and the markup session."""
    conversation = run_demo(http_url, seed=11)
    send_weather_session(http_url)
    send_markup_session(http_url)
    return conversation
