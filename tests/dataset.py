"""A fixed set of sessions sent through the stock OTLP/HTTP exporter, with what the store must say.

Six sessions, two services, three users, two threads, two models, metadata, and one session
of each explicit status (completed, failed, escalated). Times are explicit span timestamps
(whole microseconds), so every figure is known exactly.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.trace import Status, StatusCode

from tests.support import provider_with

US = 1_000  # ns per µs


@dataclass(frozen=True)
class Planned:
    id: str
    user: str
    thread: str | None
    name: str
    service: str
    model: str
    metadata: dict
    start_offset_s: int
    turns: int
    tools_per_turn: int
    turn_ms: int
    tokens_in: int
    tokens_out: int
    cost: float
    status: str

    @property
    def span_count(self) -> int:
        return self.turns * (2 + self.tools_per_turn)


PLAN: tuple[Planned, ...] = (
    Planned("sess-0", "u-1", "t-1", "Billing #0", "web-app", "gpt-4o-2024-08-06", {"plan": "pro", "region": "eu"},
            0, 2, 1, 900, 120, 30, 0.25, "completed"),
    Planned("sess-1", "u-1", "t-1", "Refund #1", "worker", "gpt-4o-2024-08-06", {"plan": "free"},
            60, 1, 3, 4000, 500, 80, 0.05, "failed"),
    Planned("sess-2", "u-1", "t-2", "Billing #2", "web-app", "gpt-4o-2024-08-06", {"plan": "pro"},
            120, 3, 0, 300, 40, 5, 0.5, "escalated"),
    Planned("sess-3", "u-2", "t-2", "Shipping #3", "worker", "claude-3-5-sonnet-20241022", {"plan": "free"},
            180, 4, 2, 1500, 70, 70, 0.01, "active"),
    Planned("sess-4", "u-2", "t-2", "billing #4", "web-app", "claude-3-5-sonnet-20241022", {"plan": "pro"},
            240, 1, 0, 7000, 2000, 300, 1.5, "active"),
    Planned("sess-5", "u-3", None, "Other #5", "worker", "claude-3-5-sonnet-20241022", {"plan": "free"},
            300, 5, 1, 100, 10, 1, 0.002, "active"),
)
BY_ID = {p.id: p for p in PLAN}


def base_ns() -> int:
    """Two hours ago, on a whole second."""
    return (int(time.time()) - 7200) * 1_000_000_000


def emit(http_url: str, base: int, plans: tuple[Planned, ...] = PLAN, headers: dict | None = None) -> None:
    """Send every planned session through the stock OTLP/HTTP exporter (two services), with
    ``headers`` (e.g. ``Authorization``) when given."""
    providers = {name: provider_with(OTLPSpanExporter(endpoint=http_url + "/v1/traces", headers=headers),
                                     service_name=name)
                 for name in ("web-app", "worker")}
    for p in plans:
        tracer = providers[p.service].get_tracer("dataset")
        ids = {"session.id": p.id, "user.id": p.user, "session.name": p.name,
               **{f"session.metadata.{k}": v for k, v in p.metadata.items()}}
        if p.thread:
            ids["gen_ai.conversation.id"] = p.thread
        start = base + p.start_offset_s * 1_000_000_000
        for turn in range(p.turns):
            t0 = start + turn * 10_000_000_000
            t1 = t0 + p.turn_ms * 1_000_000
            root = tracer.start_span(f"turn {turn}", attributes={**ids, "gen_ai.operation.name": "invoke_agent",
                                                                  "gen_ai.agent.name": "router"}, start_time=t0)
            ctx = trace.set_span_in_context(root)
            llm = tracer.start_span(f"chat {p.model}", context=ctx, start_time=t0 + 1000 * US, attributes={
                **ids, "gen_ai.operation.name": "chat", "gen_ai.request.model": p.model,
                "gen_ai.usage.input_tokens": p.tokens_in, "gen_ai.usage.output_tokens": p.tokens_out,
                "gen_ai.usage.cost": p.cost})
            llm.end(end_time=t0 + 2000 * US)
            for k in range(p.tools_per_turn):
                tool = tracer.start_span(f"execute_tool lookup_{k}", context=ctx, start_time=t0 + 3000 * US, attributes={
                    **ids, "gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": f"lookup_{k}"})
                tool.end(end_time=t0 + 4000 * US)
            last = turn == p.turns - 1
            if last and p.status == "completed":
                root.add_event("session.end", timestamp=t1)
            if last and p.status == "escalated":
                root.set_attribute("session.escalated", True)
            if p.status == "failed":
                root.set_status(Status(StatusCode.ERROR, "agent failed"))
            root.end(end_time=t1)
    for provider in providers.values():
        provider.shutdown()


def expected(p: Planned, base: int) -> dict:
    """The figures the Session JSON must carry for ``p``."""
    start_us = (base + p.start_offset_s * 1_000_000_000) // US
    end_us = start_us + (p.turns - 1) * 10_000_000 + p.turn_ms * 1000
    return {
        "id": p.id, "user_id": p.user, "thread_id": p.thread, "name": p.name, "status": p.status,
        "trace_count": p.turns, "span_count": p.span_count,
        "input_tokens": p.tokens_in * p.turns, "output_tokens": p.tokens_out * p.turns,
        "total_tokens": (p.tokens_in + p.tokens_out) * p.turns, "services": [p.service], "models": [p.model],
        "metadata": p.metadata, "start_us": start_us, "end_us": end_us, "cost_usd": p.cost * p.turns,
        "error_count": p.turns if p.status == "failed" else 0,
    }


def sort_value(p: Planned, key: str, base: int) -> float:
    e = expected(p, base)
    return {
        "start": e["start_us"], "end": e["end_us"], "duration": e["end_us"] - e["start_us"],
        "traces": e["trace_count"], "spans": e["span_count"], "tokens": e["total_tokens"], "cost": e["cost_usd"],
    }[key]


def sorted_ids(plans, key: str, descending: bool, base: int) -> list[str]:
    """Sort order with ties broken by id, as the indexes break them."""
    return [p.id for p in sorted(plans, key=lambda p: (sort_value(p, key, base), p.id), reverse=descending)]
