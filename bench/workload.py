"""Realistic LLM/agent spans, made with the real OpenTelemetry SDK, for benchmarks and tests.

Each *turn* is one trace: an agent span, two LLM calls with token usage and a tool call,
from an app that uses the otel-sessions attribute conventions. Requests are encoded once with
the stock OTLP exporter's own encoder, so replaying them measures the receiver, not the client.
"""

from __future__ import annotations

import random
from collections.abc import Iterator

from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.trace import Status, StatusCode

MODELS = ("gpt-4o-2024-08-06", "gpt-4o-mini-2024-07-18", "claude-3-5-sonnet-20241022")
TOOLS = ("search_orders", "lookup_invoice", "refund_payment", "get_weather")
AGENTS = ("router", "billing_agent", "support_agent")


class _Collect(SpanExporter):
    def __init__(self) -> None:
        self.spans: list[ReadableSpan] = []

    def export(self, spans):  # type: ignore[override]
        self.spans.extend(spans)
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:  # pragma: no cover
        pass


def make_provider(service: str = "support-bot") -> tuple[TracerProvider, _Collect]:
    resource = Resource.create(
        {
            "service.name": service,
            "service.version": "1.4.2",
            "deployment.environment.name": "production",
            "host.name": "api-7f9c6d7b5-x2kqj",
        }
    )
    provider = TracerProvider(resource=resource)
    sink = _Collect()
    provider.add_span_processor(SimpleSpanProcessor(sink))
    return provider, sink


def turn_spans(
    tracer, rng: random.Random, session_id: str, user_id: str, thread_id: str, name: str, fail: bool = False
) -> None:
    """Emit one conversation turn (one trace, 4 spans) into ``tracer``."""
    ids = {"session.id": session_id, "user.id": user_id, "gen_ai.conversation.id": thread_id, "session.name": name}
    agent = rng.choice(AGENTS)
    with tracer.start_as_current_span(f"invoke_agent {agent}", attributes={
        **ids, "gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": agent,
    }) as root:
        for step in range(2):
            model = rng.choice(MODELS)
            with tracer.start_as_current_span(f"chat {model}", attributes={
                **ids,
                "gen_ai.operation.name": "chat",
                "gen_ai.system": "openai",
                "gen_ai.request.model": model,
                "gen_ai.response.model": model,
                "gen_ai.request.temperature": 0.2,
                "gen_ai.request.max_tokens": 1024,
                "gen_ai.response.id": "chatcmpl-" + "".join(rng.choices("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789", k=29)),
                "gen_ai.response.finish_reasons": ("tool_calls",) if step == 0 else ("stop",),
                "gen_ai.usage.input_tokens": rng.randint(200, 3000),
                "gen_ai.usage.output_tokens": rng.randint(20, 600),
                "server.address": "api.openai.com",
                "server.port": 443,
            }):
                pass
            if step == 0:
                tool = rng.choice(TOOLS)
                with tracer.start_as_current_span(f"execute_tool {tool}", attributes={
                    **ids,
                    "gen_ai.operation.name": "execute_tool",
                    "gen_ai.tool.name": tool,
                    "gen_ai.tool.call.id": "call_" + "".join(rng.choices("abcdefghijklmnopqrstuvwxyz0123456789", k=24)),
                }) as tool_span:
                    if fail:
                        tool_span.set_status(Status(StatusCode.ERROR, "tool timed out"))
        if fail:
            root.set_status(Status(StatusCode.ERROR, "agent failed"))


def session_ids(count: int, seed: int = 7) -> list[tuple[str, str, str, str]]:
    """``count`` sessions as (session id, user id, thread id, name), over count/5 users."""
    rng = random.Random(seed)
    out = []
    for i in range(count):
        user = f"user-{rng.randrange(max(1, count // 5)):05d}"
        out.append((f"sess_{rng.getrandbits(128):032x}", user, f"thrd_{rng.getrandbits(128):032x}",
                    f"Support chat #{i}"))
    return out


def export_requests(
    n_requests: int, spans_per_request: int = 512, sessions_per_request: int = 50,
    session_pool: int = 2000, seed: int = 1,
) -> Iterator[bytes]:
    """Serialized ``ExportTraceServiceRequest`` bodies with fresh trace and span ids each."""
    rng = random.Random(seed)
    sessions = session_ids(session_pool, seed)
    provider, sink = make_provider()
    tracer = provider.get_tracer("support-bot.agents", "1.4.2")
    for _ in range(n_requests):
        sink.spans.clear()
        chosen = rng.sample(sessions, sessions_per_request)
        while len(sink.spans) < spans_per_request:
            sid, user, thread, name = rng.choice(chosen)
            turn_spans(tracer, rng, sid, user, thread, name, fail=rng.random() < 0.02)
        yield encode_spans(sink.spans[:spans_per_request]).SerializeToString()


_WORDS = ("order", "refund", "invoice", "delivery", "account", "payment", "blender", "address", "tracking",
          "warranty", "return", "label", "card", "balance", "subscription", "plan", "upgrade", "receipt")


def _sentence(rng: random.Random, words: int) -> str:
    return " ".join(rng.choice(_WORDS) for _ in range(words)).capitalize() + "."


def conversation_spans(tracer, rng: random.Random, thread_id: str, user_id: str, sessions: int = 4,
                       turns: int = 20) -> int:
    """A thread of ``sessions`` sessions with message content (GenAI semantic conventions):
    each user turn is one trace, an agent span around model calls whose
    ``gen_ai.input.messages`` re-send the whole thread's history, as chat apps do; every
    fourth turn calls a tool (assistant tool call, tool span, tool result, answer). Returns
    the number of messages (the system prompt not counted): 50 per session of 20 turns."""
    import json

    system = [{"type": "text", "content": "You are the support assistant of an online shop. " + _sentence(rng, 30)}]
    history: list[dict] = []
    count = 0
    for s in range(sessions):
        ids = {"session.id": f"sess_chat_{s}", "user.id": user_id, "gen_ai.conversation.id": thread_id,
               "session.name": f"Support chat {s}"}
        for t in range(turns):
            question = {"role": "user", "parts": [{"type": "text", "content": _sentence(rng, 25)}]}
            history.append(question)
            count += 1
            with tracer.start_as_current_span("invoke_agent support_agent", attributes={
                    **ids, "gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "support_agent"}):
                calls = 2 if t % 4 == 3 else 1
                for c in range(calls):
                    if calls == 2 and c == 0:
                        call_id = f"call_{s}_{t}"
                        answer = {"role": "assistant", "parts": [{"type": "tool_call", "id": call_id,
                                                                  "name": "search_orders",
                                                                  "arguments": {"query": _sentence(rng, 3)}}],
                                  "finish_reason": "tool_calls"}
                    else:
                        answer = {"role": "assistant", "parts": [{"type": "text", "content": _sentence(rng, 90)}],
                                  "finish_reason": "stop"}
                    with tracer.start_as_current_span("chat gpt-4o", attributes={
                            **ids, "gen_ai.operation.name": "chat", "gen_ai.request.model": "gpt-4o",
                            "gen_ai.usage.input_tokens": 40 * len(history), "gen_ai.usage.output_tokens": 120,
                            "gen_ai.system_instructions": json.dumps(system),
                            "gen_ai.input.messages": json.dumps(history),
                            "gen_ai.output.messages": json.dumps([answer])}):
                        pass
                    history.append(answer)
                    count += 1
                    if calls == 2 and c == 0:
                        result = {"role": "tool", "parts": [{"type": "tool_call_response", "id": call_id,
                                                             "response": {"orders": [_sentence(rng, 8)]}}]}
                        with tracer.start_as_current_span("execute_tool search_orders", attributes={
                                **ids, "gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "search_orders",
                                "gen_ai.tool.call.id": call_id}):
                            pass
                        history.append(result)
                        count += 1
    return count
