"""``otel-sessions demo``: a realistic multi-agent conversation sent to a running service.

One thread of three sessions for one user, each session a few turns (one trace per turn): a
router agent classifies the request with a small model and hands off to ``support_agent`` or
``billing_agent``; those call bigger models and tools. There is one guardrail check, one
tool call that fails (and is retried), token usage on every LLM call, the user's messages and
the agents' streamed answers (``gen_ai.input.messages`` / ``gen_ai.output.messages``, GenAI
semantic conventions), and the first and last sessions end explicitly (``session.end``). Spans go through the real OpenTelemetry SDK and
the stock OTLP/HTTP exporter, with the in-app ``SessionSpanProcessor`` stamping the session,
thread and user on every span from ``session(...)``, as an app would. The conversation is
dated in the last few minutes.

The spans go in one export request once the conversation is built, with the headers of the
standard ``OTEL_EXPORTER_OTLP_TRACES_HEADERS`` (else ``OTEL_EXPORTER_OTLP_HEADERS``) plus
``Authorization: Bearer <token>`` when a token is given. When the service refuses them (e.g.
401 without the ingest token) :class:`DemoRefused` says why in one line; the exporter's own
log lines are kept out of the terminal.
"""

from __future__ import annotations

import json
import logging
import os
import random
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from otel_sessions.processor import attributes as attr

__all__ = ["DemoConversation", "DemoRefused", "demo_headers", "run_demo"]


@dataclass
class DemoConversation:
    """What the demo sent: ids to look up."""

    thread_id: str
    user_id: str
    sessions: list[dict] = field(default_factory=list)  # {"id", "name", "spans"}

    @property
    def span_count(self) -> int:
        return sum(s["spans"] for s in self.sessions)


class DemoRefused(Exception):
    """The service did not take the demo's spans; the message says why (one line)."""


def demo_headers(token: str | None, env: dict[str, str] | None = None) -> dict[str, str]:
    """The export headers: ``OTEL_EXPORTER_OTLP_TRACES_HEADERS`` (else ``OTEL_EXPORTER_OTLP_HEADERS``),
    W3C-baggage-style ``key=value`` pairs as the OTLP exporters read them, plus
    ``authorization: Bearer <token>`` when ``token`` is set (it wins over an env header)."""
    from opentelemetry.util.re import parse_env_headers

    env = os.environ if env is None else env
    raw = env.get("OTEL_EXPORTER_OTLP_TRACES_HEADERS") or env.get("OTEL_EXPORTER_OTLP_HEADERS") or ""
    headers = {key.lower(): value for key, value in parse_env_headers(raw, liberal=True).items()}
    if token:
        headers["authorization"] = f"Bearer {token}"
    return headers


class _Collected(logging.Handler):
    """Keeps the exporter's log records instead of printing them."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def reason(self) -> str:
        """The most telling problem logged: one naming the service's answer (a 4xx/5xx the
        exporter retried) over the exporter's final 'failed after retries'."""
        problems = [r.getMessage() for r in self.records if r.levelno >= logging.WARNING]
        telling = [m for m in problems if any(s in m for s in (" 401", "Unauthorized", " 403", "Forbidden",
                                                                 " 429", "Too Many Requests", "RESOURCE_EXHAUSTED"))]
        return (telling or problems or ["the export failed"])[-1]


def _export(exporter, spans, endpoint: str) -> None:
    """Export ``spans`` in one request with the ``opentelemetry`` loggers silenced; raise
    :class:`DemoRefused` naming the reason when the service did not take them."""
    from opentelemetry.sdk.trace.export import SpanExportResult

    logger = logging.getLogger("opentelemetry")
    collected = _Collected()
    propagate = logger.propagate
    logger.addHandler(collected)
    logger.propagate = False
    try:
        result = exporter.export(spans)
    finally:
        logger.removeHandler(collected)
        logger.propagate = propagate
    if result is not SpanExportResult.SUCCESS:
        reason = collected.reason()
        hint = ""
        if " 401" in reason or "Unauthorized" in reason:
            hint = (" The service needs a token with the ingest scope: pass --token-file FILE or --token (env "
                    "OTEL_SESSIONS_INGEST_TOKEN), or set OTEL_EXPORTER_OTLP_HEADERS=Authorization=Bearer%20<token>.")
        elif " 403" in reason or "Forbidden" in reason:
            hint = " This token has no ingest scope: give one that has (otel-sessions tokens new --scopes ingest)."
        elif " 429" in reason or "Too Many Requests" in reason or "RESOURCE_EXHAUSTED" in reason:
            hint = (" The service refused them for a quota of this tenant (spans_per_second or max_sessions in its "
                    "tenants file); its audit log names it.")
        raise DemoRefused(f"the service at {endpoint} did not store the demo's {len(spans)} spans: {reason}.{hint}")


class _Clock:
    """Explicit span times: the conversation happened in the last few minutes."""

    def __init__(self, start_ns: int, rng: random.Random) -> None:
        self.now = start_ns
        self.rng = rng

    def advance(self, ms_low: float, ms_high: float) -> int:
        self.now += int(self.rng.uniform(ms_low, ms_high) * 1_000_000)
        return self.now


class _Session:
    """Emits the spans of one session with explicit times.

    Its model calls carry the conversation as chat APIs see it (GenAI semantic conventions):
    each agent call's input is the session's history so far (``gen_ai.input.messages``: user
    messages, tool calls and their results, earlier answers), its output the assistant's tool
    call or answer (``gen_ai.output.messages``); the router's classifying call reads only the
    user's message. A tool span answers the pending call (``gen_ai.tool.call.id``, ``.arguments``,
    ``.result``), and its result (or its error) joins the history."""

    def __init__(self, tracer, clock: _Clock, ids: dict[str, str], rng: random.Random) -> None:
        self.tracer = tracer
        self.clock = clock
        self.ids = ids
        self.rng = rng
        self.spans = 0
        self.history: list[dict] = []  # the session's messages so far (GenAI JSON shape)
        self.said: str | None = None  # the user's message of the current turn
        self.reply: str | None = None  # the assistant's answer to it
        self.pending: dict | None = None  # the tool call the last model call asked for

    @contextmanager
    def span(self, name: str, parent=None, **attributes) -> Iterator:
        from opentelemetry import trace

        context = trace.set_span_in_context(parent) if parent is not None else None
        span = self.tracer.start_span(name, context=context, attributes={**self.ids, **attributes},
                                      start_time=self.clock.advance(1, 5))
        try:
            yield span
        finally:
            span.end(end_time=self.clock.advance(1, 5))
            self.spans += 1

    def llm(self, parent, model: str, tokens_in: int, tokens_out: int, finish: str = "stop",
            answer: bool = False, call: tuple[str, str] | None = None, router: bool = False) -> None:
        """A model call: ``call`` (tool name, JSON arguments) asks for a tool (finish
        ``tool_calls``); ``answer`` streams the turn's reply (with a time to first chunk);
        ``router`` reads only the user's message and answers nothing recorded."""
        inputs = [_message("user", self.said)] if router else list(self.history)
        content: dict = {"gen_ai.input.messages": json.dumps(inputs)} if inputs else {}
        output = None
        if call is not None:
            name, arguments = call
            self.pending = {"type": "tool_call", "id": f"call_{self.rng.getrandbits(48):012x}", "name": name,
                            "arguments": json.loads(arguments)}
            output = {"role": "assistant", "parts": [self.pending], "finish_reason": finish}
        elif answer and self.reply:
            output = {**_message("assistant", self.reply), "finish_reason": finish}
            content["gen_ai.response.time_to_first_chunk"] = round(self.rng.uniform(0.25, 0.9), 3)
        if output is not None:
            content["gen_ai.output.messages"] = json.dumps([output])
            self.history.append({k: v for k, v in output.items() if k != "finish_reason"})
        with self.span(f"chat {model}", parent, **{
            attr.OPERATION_NAME: "chat", "gen_ai.system": "openai" if model.startswith("gpt") else "anthropic",
            "gen_ai.request.model": model, "gen_ai.response.model": model,
            attr.INPUT_TOKENS[0]: tokens_in, attr.OUTPUT_TOKENS[0]: tokens_out,
            "gen_ai.response.finish_reasons": (finish,), **content,
        }):
            self.clock.advance(400, 2500)

    def tool(self, parent, name: str, arguments: str, result: str, fail: str | None = None) -> None:
        """The tool the last model call asked for: ``result`` (JSON text), or the error ``fail``."""
        from opentelemetry.trace import Status, StatusCode

        call_id = self.pending["id"] if self.pending else f"call_{self.rng.getrandbits(48):012x}"
        self.pending = None
        outcome = json.dumps({"error": fail}) if fail else result
        with self.span(f"execute_tool {name}", parent, **{
            attr.OPERATION_NAME: "execute_tool", attr.TOOL_NAME: name, "gen_ai.tool.call.id": call_id,
            "gen_ai.tool.call.arguments": arguments, "gen_ai.tool.call.result": outcome,
        }) as span:
            self.clock.advance(50, 600)
            if fail:
                span.add_event(attr.EXCEPTION_EVENT, {"exception.type": "TimeoutError", "exception.message": fail},
                               timestamp=self.clock.now)
                span.set_status(Status(StatusCode.ERROR, fail))
        self.history.append({"role": "tool", "parts": [{"type": "tool_call_response", "id": call_id,
                                                        "response": outcome}]})

    def guardrail(self, parent, name: str) -> None:
        with self.span(f"guardrail {name}", parent, **{"guardrail.name": name, "guardrail.result": "pass",
                                                       attr.OPERATION_NAME: "guardrail"}):
            self.clock.advance(20, 80)

    def agent(self, parent, agent: str):
        return self.span(f"invoke_agent {agent}", parent, **{attr.OPERATION_NAME: "invoke_agent",
                                                             attr.AGENT_NAME: agent})

    def turn(self, text: str, route_to: str, body, reply: str, end_session: bool = False) -> None:
        """One user message: router (guardrail, classify, handoff), then the chosen agent's work,
        whose last model call answers ``reply``."""
        self.said, self.reply = text, reply
        self.history.append(_message("user", text))
        with self.agent(None, "router") as root:
            root.set_attribute("input.value", text)
            body(self, root, route_to)
            if end_session:
                root.add_event(attr.SESSION_END_EVENT, timestamp=self.clock.now)
        self.clock.advance(8_000, 30_000)  # the user reads and types


def _message(role: str, text: str) -> dict:
    """A message of ``gen_ai.input.messages`` / ``gen_ai.output.messages`` (GenAI JSON shape)."""
    return {"role": role, "parts": [{"type": "text", "content": text}]}


def _order_status(s: _Session, root, agent: str) -> None:
    s.guardrail(root, "input_moderation")
    s.llm(root, "gpt-4o-mini", 412, 18, router=True)
    with s.agent(root, agent) as handoff:
        s.llm(handoff, "gpt-4o", 1310, 64, "tool_calls", call=("get_order_status", _ORDER))
        s.tool(handoff, "get_order_status", _ORDER, '{"status": "shipped", "eta": "Thursday"}')
        s.llm(handoff, "gpt-4o", 1502, 151, answer=True)


def _thanks(s: _Session, root, agent: str) -> None:
    s.llm(root, "gpt-4o-mini", 388, 12, router=True)
    with s.agent(root, agent) as handoff:
        s.llm(handoff, "gpt-4o", 1720, 42, answer=True)


def _refund(s: _Session, root, agent: str) -> None:
    s.llm(root, "gpt-4o-mini", 455, 21, router=True)
    with s.agent(root, agent) as handoff:
        s.llm(handoff, "claude-3-5-sonnet-20241022", 2210, 88, "tool_calls", call=("lookup_invoice", _ORDER))
        s.tool(handoff, "lookup_invoice", _ORDER, '{"invoice": "INV-7781", "amount": 42.5}')
        s.llm(handoff, "claude-3-5-sonnet-20241022", 2650, 95, "tool_calls", call=("refund_payment", _REFUND))
        s.tool(handoff, "refund_payment", _REFUND, "", fail="payment gateway timed out after 10s")
        s.llm(handoff, "claude-3-5-sonnet-20241022", 2890, 70, "tool_calls", call=("refund_payment", _REFUND))
        s.tool(handoff, "refund_payment", _REFUND, '{"refund": "RF-2231", "status": "paid"}')
        s.llm(handoff, "claude-3-5-sonnet-20241022", 3010, 160, answer=True)


def _follow_up(s: _Session, root, agent: str) -> None:
    s.llm(root, "gpt-4o-mini", 402, 15, router=True)
    with s.agent(root, agent) as handoff:
        s.llm(handoff, "claude-3-5-sonnet-20241022", 1980, 120, "tool_calls",
              call=("get_refund_status", '{"invoice": "INV-7781"}'))
        s.tool(handoff, "get_refund_status", '{"invoice": "INV-7781"}', '{"refund": "RF-2231", "status": "paid out"}')
        s.llm(handoff, "claude-3-5-sonnet-20241022", 2105, 98, answer=True)


_ORDER = '{"order_id": "A-10045"}'
_REFUND = '{"invoice": "INV-7781", "amount": 42.5}'


def _check_reachable(endpoint: str) -> None:
    try:
        with urllib.request.urlopen(endpoint.rstrip("/") + "/healthz", timeout=5):
            pass
    except OSError as exc:
        reason = getattr(exc, "reason", exc)
        raise ConnectionError(f"cannot reach the otel-sessions service at {endpoint}: {reason}. "
                              "Start it with `otel-sessions serve`, or point --server at it.") from None


def run_demo(endpoint: str, *, seed: int | None = None, token: str | None = None,
             headers: dict[str, str] | None = None) -> DemoConversation:
    """Send the conversation to ``endpoint`` (the service's OTLP/HTTP base URL); returns its ids.

    ``headers`` default to :func:`demo_headers` of ``token``. Raises :class:`ConnectionError`
    when ``/healthz`` does not answer, :class:`DemoRefused` when the export is refused."""
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from otel_sessions.processor import SessionSpanProcessor
    from otel_sessions.processor import session as session_context

    _check_reachable(endpoint)
    from opentelemetry.sdk.trace.id_generator import IdGenerator

    class SeededIds(IdGenerator):
        """Trace and span ids from the seed, so a rerun with the same seed sends the same spans
        (the store counts them once)."""

        def __init__(self, ids: random.Random) -> None:
            self.ids = ids

        def generate_span_id(self) -> int:
            return self.ids.getrandbits(64) or 1

        def generate_trace_id(self) -> int:
            return self.ids.getrandbits(128) or 1

    rng = random.Random(seed)
    id_generator = SeededIds(random.Random(seed)) if seed is not None else None
    provider = TracerProvider(id_generator=id_generator, resource=Resource.create({
        "service.name": "support-bot", "service.version": "1.4.2", "deployment.environment.name": "demo"}))
    if headers is None:
        headers = demo_headers(token)
    exporter = OTLPSpanExporter(endpoint=endpoint.rstrip("/") + "/v1/traces", headers=headers, timeout=10)
    collected = InMemorySpanExporter()
    provider.add_span_processor(SessionSpanProcessor())  # before the collecting processor
    provider.add_span_processor(SimpleSpanProcessor(collected))
    tracer = provider.get_tracer("otel_sessions.demo")

    suffix = f"{rng.getrandbits(48):012x}"
    conversation = DemoConversation(thread_id=f"thrd_demo_{suffix}", user_id="u-123")
    clock = _Clock(time.time_ns() - 6 * 60 * 1_000_000_000, rng)
    metadata = {"channel": "web", "plan": "pro"}
    plan = [
        ("Order status", [
            ("Where is my order A-10045?", "support_agent", _order_status,
             "Order A-10045 left our warehouse yesterday and should arrive on Thursday.", False),
            ("Great, thanks!", "support_agent", _thanks, "You're welcome! Anything else I can help with?", True)]),
        ("Refund request", [
            ("The blender arrived broken, I want a refund.", "billing_agent", _refund,
             "Sorry about the blender. I refunded $42.50 to your card (invoice INV-7781); it takes 3-5 days.",
             False)]),
        ("Refund follow-up", [
            ("Has my refund gone through?", "billing_agent", _follow_up,
             "Yes: the refund for INV-7781 was paid out this morning.", False),
            ("Perfect, that's all.", "support_agent", _thanks, "Glad I could help. Have a nice day!", True)]),
    ]
    previous = None
    try:
        for number, (name, turns) in enumerate(plan, start=1):
            session_id = f"sess_demo_{suffix}_{number}"
            ids = {attr.SESSION_PREVIOUS_ID: previous} if previous else {}
            session = _Session(tracer, clock, ids, rng)
            with session_context(session_id, thread_id=conversation.thread_id, user_id=conversation.user_id,
                                 name=name, metadata=metadata):
                for text, agent, body, reply, end in turns:
                    session.turn(text, agent, body, reply, end_session=end)
            conversation.sessions.append({"id": session_id, "name": name, "spans": session.spans})
            previous = session_id
            clock.advance(30_000, 60_000)
        _export(exporter, collected.get_finished_spans(), endpoint)
    finally:
        provider.shutdown()
        exporter.shutdown()
    return conversation
