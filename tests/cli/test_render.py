"""render.py without a service: the span tree, span kinds, figures, tables and span lines."""

from __future__ import annotations

import io
import json

import pytest
from rich.console import Console

from otel_sessions.exporter.cli.render import (
    format_cost,
    format_duration,
    format_time,
    node_label,
    page_note,
    render_tree,
    session_facts,
    sessions_table,
    span_attributes,
    span_kind,
    span_tree,
    strip_tree,
    tail_line,
    traces_table,
)


def _value(value) -> dict:
    if isinstance(value, bool):
        return {"boolValue": value}
    if isinstance(value, int):
        return {"intValue": str(value)}  # OTLP/JSON writes 64-bit integers as strings
    if isinstance(value, float):
        return {"doubleValue": value}
    return {"stringValue": value}


def make_span(trace_id: str, span_id: str, name: str, start: int, end: int | None = None, parent: str = "",
              status: dict | None = None, events: list | None = None, **attributes) -> dict:
    """An OTLP/JSON span; ``attributes`` keys use ``__`` for dots (``gen_ai__request__model``)."""
    span = {"traceId": trace_id, "spanId": span_id, "parentSpanId": parent, "name": name,
            "startTimeUnixNano": str(start), "endTimeUnixNano": str(end if end is not None else start),
            "attributes": [{"key": k.replace("__", "."), "value": _value(v)} for k, v in attributes.items()]}
    if status is not None:
        span["status"] = status
    if events is not None:
        span["events"] = events
    return span


def traces_data(*groups: list[dict]) -> dict:
    """TracesData with each group of spans in its own resource (and two scopes for the first)."""
    resources = []
    for spans in groups:
        half = len(spans) // 2
        resources.append({"resource": {"attributes": []},
                          "scopeSpans": [{"scope": {"name": "a"}, "spans": spans[:half]},
                                         {"scope": {"name": "b"}, "spans": spans[half:]}]})
    return {"resourceSpans": resources}


def names(nodes: list[dict]) -> list:
    """The tree as nested names: ``[name, [children...]]`` per node."""
    return [[n["name"], names(n["children"])] for n in nodes]


MS = 1_000_000  # nanoseconds


# --- span_tree --------------------------------------------------------------------------------
def test_span_tree_nests_children_under_parents_in_start_order():
    spans = [
        make_span("t1", "r", "root", 100 * MS, 900 * MS),
        make_span("t1", "c2", "second", 300 * MS, 400 * MS, parent="r"),
        make_span("t1", "c1", "first", 200 * MS, 250 * MS, parent="r"),
        make_span("t1", "g", "grandchild", 210 * MS, 220 * MS, parent="c1"),
        make_span("t1", "c3", "third", 350 * MS, 360 * MS, parent="r"),
    ]
    roots = span_tree({"id": "s", "traces": [{"trace_id": "t1"}]}, traces_data(spans))
    assert names(roots) == [["root", [["first", [["grandchild", []]]], ["second", []], ["third", []]]]]
    assert roots[0]["children"][0]["parent_span_id"] == "r"
    assert roots[0]["parent_span_id"] is None  # "" in OTLP/JSON means no parent


def test_span_tree_orphans_become_roots_of_their_trace_in_start_order():
    spans = [
        make_span("t1", "r", "root", 100 * MS, 200 * MS),
        make_span("t1", "o1", "late orphan", 500 * MS, parent="gone"),
        make_span("t1", "o2", "early orphan", 50 * MS, parent="also-gone"),
        make_span("t1", "k", "child of orphan", 510 * MS, parent="o1"),
    ]
    roots = span_tree({"id": "s", "traces": [{"trace_id": "t1"}]}, traces_data(spans))
    assert names(roots) == [["early orphan", []], ["root", []], ["late orphan", [["child of orphan", []]]]]
    assert roots[0]["parent_span_id"] == "also-gone"  # the missing parent is still reported


def test_span_tree_follows_the_sessions_trace_order_then_unlisted_traces_by_id():
    spans = [
        make_span("t-b", "1", "b root", 100 * MS),
        make_span("t-a", "1", "a root", 200 * MS),
        make_span("t-z", "1", "z root", 300 * MS),
        make_span("t-c", "1", "c root", 400 * MS),
    ]
    session = {"id": "s", "traces": [{"trace_id": "t-z"}, {"trace_id": "t-b"}, {"trace_id": "t-gone"}]}
    roots = span_tree(session, traces_data(spans[:2], spans[2:]))
    assert [r["name"] for r in roots] == ["z root", "b root", "a root", "c root"]


def test_span_tree_parents_are_looked_up_within_the_same_trace():
    spans = [
        make_span("t1", "p", "parent in t1", 100 * MS),
        make_span("t2", "x", "same parent id in t2", 200 * MS, parent="p"),
    ]
    roots = span_tree({"id": "s", "traces": []}, traces_data(spans))
    assert names(roots) == [["parent in t1", []], ["same parent id in t2", []]]


def test_span_tree_node_fields():
    span = make_span("t1", "a", "chat gpt-4o", 1_000 * MS, 2_500 * MS, status={"code": 2, "message": "rate limited"},
                     gen_ai__operation__name="chat", gen_ai__request__model="gpt-4o",
                     gen_ai__response__model="gpt-4o-2024-08-06", gen_ai__usage__input_tokens=120,
                     gen_ai__usage__output_tokens=30)
    (node,) = span_tree({"id": "s"}, traces_data([span]))
    assert node == {
        "name": "chat gpt-4o", "kind": "error", "span_id": "a", "parent_span_id": None, "trace_id": "t1",
        "start_unix_nano": 1_000 * MS, "duration_ms": 1500.0, "input_tokens": 120, "output_tokens": 30,
        "model": "gpt-4o-2024-08-06", "error": "rate limited", "children": [],
    }
    # an end before the start is a zero duration, not a negative one; no usage is zero tokens
    (node,) = span_tree({"id": "s"}, traces_data([make_span("t1", "b", "odd", 2_000 * MS, 1_000 * MS,
                                                            gen_ai__request__model="m")]))
    assert (node["duration_ms"], node["input_tokens"], node["output_tokens"], node["model"]) == (0.0, 0, 0, "m")
    assert span_tree({"id": "s"}, {}) == []


def test_strip_tree_is_the_json_the_tree_option_prints():
    spans = [make_span("t1", "r", "root", 100 * MS), make_span("t1", "c", "child", 200 * MS, parent="r")]
    roots = span_tree({"id": "s"}, traces_data(spans))
    stripped = strip_tree(roots)
    assert json.loads(json.dumps(stripped)) == stripped
    assert list(stripped[0]) == ["name", "kind", "span_id", "parent_span_id", "trace_id", "start_unix_nano",
                                 "duration_ms", "input_tokens", "output_tokens", "model", "error", "children"]
    assert stripped[0]["children"][0]["name"] == "child"
    assert stripped[0] is not roots[0] and stripped[0]["children"][0] is not roots[0]["children"][0]


# --- span_kind --------------------------------------------------------------------------------
def kind(name: str = "span", status: dict | None = None, events: list | None = None, **attributes) -> str:
    span = make_span("t", "s", name, 0, status=status, events=events, **attributes)
    return span_kind(span, span_attributes(span))


@pytest.mark.parametrize("expected, span", [
    # errors win over everything
    ("error", dict(status={"code": 2}, gen_ai__operation__name="execute_tool", gen_ai__tool__name="lookup")),
    ("error", dict(events=[{"name": "exception", "attributes": []}], gen_ai__operation__name="chat")),
    ("llm", dict(status={"code": 1}, gen_ai__operation__name="chat")),  # STATUS_CODE_OK is not an error
    ("llm", dict(events=[{"name": "gen_ai.choice"}], gen_ai__operation__name="chat")),
    # guardrails: by operation, span name or guardrail.name
    ("guardrail", dict(name="guardrail input_moderation", guardrail__name="input_moderation",
                       gen_ai__operation__name="guardrail")),
    ("guardrail", dict(name="Guardrail check")),
    ("guardrail", dict(name="moderation", guardrail__name="pii")),
    ("guardrail", dict(openinference__span__kind="GUARDRAIL")),
    # tools
    ("tool", dict(gen_ai__operation__name="execute_tool", gen_ai__tool__name="get_weather")),
    ("tool", dict(gen_ai__tool__name="get_weather")),
    ("tool", dict(openinference__span__kind="TOOL")),
    ("tool", dict(gen_ai__operation__name="execute_tool", gen_ai__agent__name="router")),  # tool before agent
    # agents
    ("agent", dict(gen_ai__operation__name="invoke_agent", gen_ai__agent__name="router")),
    ("agent", dict(gen_ai__operation__name="create_agent")),
    ("agent", dict(gen_ai__operation__name="handoff")),
    ("agent", dict(openinference__span__kind="AGENT")),
    ("agent", dict(gen_ai__agent__name="billing", gen_ai__request__model="gpt-4o")),  # agent before llm
    # LLM calls
    ("llm", dict(gen_ai__operation__name="chat", gen_ai__request__model="gpt-4o-mini")),
    ("llm", dict(gen_ai__operation__name="text_completion")),
    ("llm", dict(gen_ai__operation__name="generate_content")),
    ("llm", dict(gen_ai__operation__name="embeddings")),
    ("llm", dict(openinference__span__kind="LLM")),
    ("llm", dict(gen_ai__request__model="claude-sonnet-4")),
    ("llm", dict(gen_ai__operation__name="chat", openinference__span__kind="TOOL")),  # gen_ai first
    # plain spans
    ("span", dict(name="GET /v1/orders", http__request__method="GET", http__response__status_code=200)),
    ("span", dict(name="SELECT orders", db__system="postgresql")),
    ("span", dict(name="workflow", traceloop__span__kind="tool")),  # traceloop.span.kind is not read
    ("span", dict(openinference__span__kind="CHAIN")),
])
def test_span_kind(expected, span):
    assert kind(**span) == expected


def test_span_attributes_reads_scalar_values():
    span = make_span("t", "s", "x", 0, a="text", b=3, c=0.5, d=True)
    span["attributes"].append({"key": "e", "value": {"arrayValue": {"values": []}}})
    assert span_attributes(span) == {"a": "text", "b": "3", "c": 0.5, "d": True}


# --- figures ----------------------------------------------------------------------------------
@pytest.mark.parametrize("ms, text", [
    (None, ""), (0, "0ms"), (0.4, "0ms"), (12.6, "13ms"), (999, "999ms"), (1000, "1.00s"), (1500, "1.50s"),
    (12_345, "12.35s"), (60_000, "1.0m"), (90_000, "1.5m"), (3_600_000, "60.0m"),
])
def test_format_duration(ms, text):
    assert format_duration(ms) == text


@pytest.mark.parametrize("session, text", [
    ({"cost_usd": 0.0123}, "$0.0123"),
    ({"cost_usd": 1.5}, "$1.5000"),
    ({"cost_usd": 0.00006}, "$0.00006"),  # tiny costs: two significant digits, not $0.0000
    ({"cost_usd": 0.00004}, "$0.00004"),
    ({"cost_usd": 0.000012}, "$0.000012"),
    ({"cost_usd": 0.0000123456}, "$0.000012"),
    ({"cost_usd": 0.00123}, "$0.0012"),
    ({"cost_usd": 1e-12}, "$0.0000"),
    ({"cost_usd": 0.0}, "$0.0000"),
    ({"cost_usd": None}, "$0.0000"),
    ({}, "$0.0000"),
    ({"cost_usd": 0.0123, "cost_estimated": True}, "$0.0123*"),
    ({"cost_usd": None, "cost_estimated": True}, "$0.0000*"),
    ({"cost_usd": 0.0123, "cost_estimated": False}, "$0.0123"),
])
def test_format_cost(session, text):
    assert format_cost(session) == text


def test_cost_note_explains_the_star():
    from otel_sessions.exporter.cli.render import ESTIMATED_NOTE, cost_note

    assert cost_note([{"cost_estimated": False}, {}]) is None
    assert cost_note([{"cost_estimated": False}, {"cost_estimated": True}]) == ESTIMATED_NOTE
    assert ESTIMATED_NOTE.startswith("* ") and "estimated" in ESTIMATED_NOTE


@pytest.mark.parametrize("iso, text", [
    ("2024-05-01T12:34:56.789123Z", "2024-05-01 12:34:56"),
    ("2024-05-01T12:34:56+00:00", "2024-05-01 12:34:56"),
    ("", ""), (None, ""),
])
def test_format_time(iso, text):
    assert format_time(iso) == text


def test_page_note():
    assert page_note({"data": [{}, {}, {}], "offset": 20, "total": 57}) == "21-23 of 57"
    assert page_note({"data": [], "offset": 0, "total": 0}) == "0-0 of 0"
    assert page_note({"data": [{}]}) == "1-1 of 0"
    assert page_note({"data": [{}], "offset": 0, "total": 9, "partial": True}) == (
        "1-1 of 9 (partial: a filter was applied to a bounded set of candidates; more may match)")


# --- tables, labels and lines -----------------------------------------------------------------
def printed(renderable) -> str:
    console = Console(file=io.StringIO(), width=200, color_system=None)
    console.print(renderable)
    return console.file.getvalue()


SESSION = {"id": "sess-1", "name": "refund", "status": "failed", "user_id": "u-1", "thread_id": "t-1",
           "start_time": "2024-05-01T12:34:56.789Z", "duration_ms": 1500, "trace_count": 2, "span_count": 7,
           "error_count": 1, "total_tokens": 420, "cost_usd": 0.0123, "cost_estimated": True}


def test_sessions_table_rows():
    with_figures = {**SESSION, "conversation": {"message_count": 6}}
    lines = printed(sessions_table("sessions", [with_figures, {"id": "sess-2"}])).splitlines()
    assert lines[0].strip() == "sessions"
    header = [c.strip() for c in lines[2].split("┃")[1:-1]]
    assert header == ["session", "name", "status", "user", "thread", "started", "messages", "duration", "traces",
                      "spans", "errors", "tokens", "cost"]
    row = [c.strip() for c in lines[4].split("│")[1:-1]]
    assert row == ["sess-1", "refund", "failed", "u-1", "t-1", "2024-05-01 12:34:56", "6", "1.50s", "2", "7", "1",
                   "420", "$0.0123*"]
    bare = [c.strip() for c in lines[5].split("│")[1:-1]]
    assert bare == ["sess-2", "", "", "", "", "", "", "", "0", "0", "0", "0", "$0.0000"]
    no_thread = printed(sessions_table("thread t-1", [SESSION], show_thread=False)).splitlines()
    assert "thread" not in no_thread[2] and "t-1" not in no_thread[4]


def test_session_facts_and_traces_table():
    session = {**SESSION, "models": ["gpt-4o", "gpt-4o-mini"], "services": [], "tools": ["refund"],
               "metadata": {"tier": "gold", "region": "eu"},
               "traces": [{"trace_id": "ab" * 16, "root_name": "POST /chat", "start_time": "2024-05-01T12:34:56Z",
                           "duration_ms": 250, "span_count": 4, "error_count": 0, "total_tokens": 99,
                           "cost_usd": 0.00004}]}
    assert session_facts(session) == ["[bold]models:[/] gpt-4o, gpt-4o-mini", "[bold]tools:[/] refund",
                                      "[bold]metadata:[/] tier=gold, region=eu"]
    assert session_facts({"id": "x"}) == []
    row = [c.strip() for c in printed(traces_table(session)).splitlines()[4].split("│")[1:-1]]
    assert row == ["ab" * 16, "POST /chat", "2024-05-01 12:34:56", "250ms", "4", "0", "99", "$0.00004"]


def test_node_label_and_tree():
    spans = [
        make_span("t1", "r", "router", 0, 2_000 * MS, gen_ai__agent__name="router"),
        make_span("t1", "c", "chat [gpt]", 10 * MS, 910 * MS, parent="r", gen_ai__request__model="gpt-4o",
                  gen_ai__usage__input_tokens=120, gen_ai__usage__output_tokens=30),
        make_span("t1", "f", "refund", 950 * MS, 1_000 * MS, parent="r", gen_ai__tool__name="refund",
                  status={"code": 2, "message": "card [declined]"}),
    ]
    roots = span_tree({"id": "sess-1"}, traces_data(spans))
    chat, refund = roots[0]["children"]
    assert node_label(chat) == "[magenta]      LLM[/] chat \\[gpt]  [dim]900ms[/]  120→30 tok  [dim]gpt-4o[/]"
    assert node_label(refund) == "[bold red]    error[/] refund  [dim]50ms[/]  [red]card \\[declined][/]"
    assert printed(render_tree({"id": "sess-1", "name": "refund [x]"}, roots)).splitlines() == [
        "refund [x] sess-1",
        "└──     agent router  2.00s",
        "    ├──       LLM chat [gpt]  900ms  120→30 tok  gpt-4o",
        "    └──     error refund  50ms  card [declined]",
    ]


def test_tail_line(utc):
    start = 1_714_566_896 * 1_000_000_000  # 2024-05-01 12:34:56 UTC
    span = make_span("0123456789abcdef" * 2, "s", "get_weather", start, start + 42 * MS,
                     gen_ai__operation__name="execute_tool")
    assert tail_line(span) == "[dim]12:34:56[/] 01234567 [blue]     tool[/] get_weather  [dim]42ms[/]"
