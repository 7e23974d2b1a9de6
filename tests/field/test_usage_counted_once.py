"""Usage is counted once when an agent (or chain) span carries the total of the model calls
below it (``docs/conventions.md``, usage): counted at the model-call spans, the aggregate only
for a trace whose model calls carry none, whatever order and whichever receiver the spans come
through, and a resent request changes nothing."""

from __future__ import annotations

import math

import pytest

from tests.field.helpers import send, session, tracer

#: one gpt-4o call of 56 input and 5 output tokens at the list price (2.50 / 10.00 USD per 1M)
ONE_CALL_USD = (56 * 2.50 + 5 * 10.00) / 1_000_000

SHAPES = {
    # GenAI semantic conventions: the agent span sums its children's usage (and names the model)
    "genai": (
        "invoke_agent helper",
        {"gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "helper", "gen_ai.request.model": "gpt-4o",
         "gen_ai.usage.input_tokens": 56, "gen_ai.usage.output_tokens": 5},
        "chat gpt-4o",
        {"gen_ai.operation.name": "chat", "gen_ai.request.model": "gpt-4o",
         "gen_ai.usage.input_tokens": 56, "gen_ai.usage.output_tokens": 5},
    ),
    # OpenInference: an AGENT span with the token counts of the LLM span below it
    "openinference": (
        "Agent",
        {"openinference.span.kind": "AGENT", "llm.token_count.prompt": 56, "llm.token_count.completion": 5},
        "ChatCompletion",
        {"openinference.span.kind": "LLM", "llm.model_name": "gpt-4o", "llm.token_count.prompt": 56,
         "llm.token_count.completion": 5},
    ),
}

#: how the two spans arrive: (receiver, span names of one request) in turn; receiver 0 is
#: written to over OTLP/gRPC, receiver 1 (another service on the same Redis) over OTLP/HTTP
ORDERS = {
    "one request": [(0, ["child", "agent"])],
    "one request, agent first": [(0, ["agent", "child"])],
    "child, then agent": [(0, ["child"]), (0, ["agent"])],
    "agent, then child": [(0, ["agent"]), (0, ["child"])],
    "agent, then both (a retry with more)": [(0, ["agent"]), (0, ["agent", "child"])],
    "child, then both (a retry with more)": [(0, ["child"]), (0, ["child", "agent"])],
    "two receivers, agent then child": [(0, ["agent"]), (1, ["child"])],
    "two receivers, child then agent": [(0, ["child"]), (1, ["agent"])],
}


def _agent_trace(shape: str, session_id: str) -> dict:
    agent_name, agent_attributes, child_name, child_attributes = SHAPES[shape]
    t, memory = tracer()
    with t.start_as_current_span(agent_name, attributes={"session.id": session_id, **agent_attributes}):
        with t.start_as_current_span(child_name, attributes={"session.id": session_id, **child_attributes}):
            pass
    child, agent = memory.get_finished_spans()
    return {"agent": agent, "child": child}


def _deliver(receivers, spans: dict, order: list) -> None:
    for receiver, names in order:
        send(receivers[receiver], [spans[name] for name in names], "grpc" if receiver == 0 else "http")


def _assert_counted_once(detail: dict, root_name: str, cost: float = ONE_CALL_USD, spans: int = 2) -> None:
    assert (detail["input_tokens"], detail["output_tokens"], detail["total_tokens"]) == (56, 5, 61)
    assert math.isclose(detail["cost_usd"], cost, rel_tol=1e-9), detail["cost_usd"]
    assert (detail["span_count"], detail["trace_count"]) == (spans, 1)
    (trace,) = detail["traces"]
    assert (trace["input_tokens"], trace["output_tokens"], trace["total_tokens"]) == (56, 5, 61)
    assert math.isclose(trace["cost_usd"], cost, rel_tol=1e-9), trace["cost_usd"]
    assert trace["span_count"] == spans and trace["root_name"] == root_name


@pytest.mark.parametrize("order", list(ORDERS))
@pytest.mark.parametrize("shape", list(SHAPES))
def test_agent_total_and_model_call_count_once(receivers, session_id, shape, order):
    spans = _agent_trace(shape, session_id)
    _deliver(receivers, spans, ORDERS[order])
    detail = session(receivers[0], session_id)
    _assert_counted_once(detail, SHAPES[shape][0])
    assert detail["cost_estimated"] is True
    assert session(receivers[1], session_id) == detail  # the other receiver reads the same

    _deliver(receivers, spans, ORDERS[order])  # every request again: nothing changes
    assert session(receivers[0], session_id) == detail
    _deliver(receivers, spans, [(1, ["child", "agent"]), (0, ["agent"]), (1, ["child"])])
    assert session(receivers[0], session_id) == detail


def _agents_only_trace(session_id: str) -> dict:
    """An agent (56/5, gpt-4o) around a sub-agent (30/3) around a tool call: no model-call span."""
    t, memory = tracer()
    ids = {"session.id": session_id}
    with t.start_as_current_span("invoke_agent planner", attributes={
            **ids, "gen_ai.operation.name": "invoke_agent", "gen_ai.request.model": "gpt-4o",
            "gen_ai.usage.input_tokens": 56, "gen_ai.usage.output_tokens": 5}):
        with t.start_as_current_span("invoke_agent researcher", attributes={
                **ids, "gen_ai.operation.name": "invoke_agent", "gen_ai.usage.input_tokens": 30,
                "gen_ai.usage.output_tokens": 3}):
            with t.start_as_current_span("execute_tool search", attributes={
                    **ids, "gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "search"}):
                pass
    tool, inner, outer = memory.get_finished_spans()
    return {"outer": outer, "inner": inner, "tool": tool}


@pytest.mark.parametrize("order", [
    [(0, ["outer", "inner", "tool"])],
    [(0, ["tool", "inner"]), (0, ["outer"])],
    [(0, ["outer"]), (0, ["inner", "tool"])],
    [(0, ["inner"]), (1, ["outer", "tool"])],
    [(0, ["outer"]), (1, ["outer", "inner"]), (0, ["tool"])],
], ids=["one request", "inner first", "outer first", "two receivers", "retry with more"])
def test_agent_only_trace_counts_its_largest_aggregate_once(receivers, session_id, order):
    spans = _agents_only_trace(session_id)
    _deliver(receivers, spans, order)
    detail = session(receivers[0], session_id)
    _assert_counted_once(detail, "invoke_agent planner", spans=3)

    _deliver(receivers, spans, order)
    _deliver(receivers, spans, [(1, ["outer", "inner", "tool"])])
    assert session(receivers[0], session_id) == detail


@pytest.mark.parametrize("order", [
    [(0, ["child", "agent"])],
    [(0, ["child"]), (0, ["agent"])],
    [(0, ["agent"]), (0, ["child"])],
    [(0, ["child"]), (1, ["agent"])],
    [(0, ["agent"]), (1, ["child"])],
], ids=["one request", "child first (kept by trace)", "agent first", "two receivers, child first",
        "two receivers, agent first"])
def test_session_named_on_the_agent_only(receivers, session_id, order):
    """The model call names no session: it joins the agent's session by trace, before or after."""
    agent_name, agent_attributes, child_name, child_attributes = SHAPES["genai"]
    t, memory = tracer()
    with t.start_as_current_span(agent_name, attributes={"session.id": session_id, **agent_attributes}):
        with t.start_as_current_span(child_name, attributes=child_attributes):
            pass
    child, agent = memory.get_finished_spans()
    spans = {"agent": agent, "child": child}
    _deliver(receivers, spans, order)
    detail = session(receivers[0], session_id)
    _assert_counted_once(detail, agent_name)
    _deliver(receivers, spans, order)
    assert session(receivers[0], session_id) == detail


def test_several_traces_each_counted_by_its_own_rule(receivers, session_id):
    """Trace A has agents only, trace B an agent and its model call: A counts its agent, B its
    model call, whatever arrives when."""
    a = _agents_only_trace(session_id)
    b = _agent_trace("genai", session_id)
    _deliver(receivers, {**a, **{"b_" + k: v for k, v in b.items()}}, [
        (0, ["b_agent", "inner"]), (1, ["outer", "b_child"]), (0, ["tool"])])
    detail = session(receivers[0], session_id)
    assert (detail["input_tokens"], detail["output_tokens"], detail["trace_count"], detail["span_count"]) == (
        112, 10, 2, 5)
    assert math.isclose(detail["cost_usd"], 2 * ONE_CALL_USD, rel_tol=1e-9)
    per_trace = {t["root_name"]: (t["input_tokens"], t["output_tokens"]) for t in detail["traces"]}
    assert per_trace == {"invoke_agent planner": (56, 5), "invoke_agent helper": (56, 5)}
