"""What the lookup commands print: session tables, durations, costs and times, the span tree,
transcripts, one span's details, JSON.

Tables and trees are drawn with ``rich`` (imported when first drawn). Spans come as OTLP/JSON
(hex ids, ``attributes`` as a key/value list); :func:`span_kind` classifies each one as
``error``, ``guardrail``, ``tool``, ``agent``, ``llm`` or plain ``span`` for display.
"""

from __future__ import annotations

import json
import math
import time
from typing import Any

__all__ = [
    "format_duration", "format_usd", "format_cost", "cost_note", "ESTIMATED_NOTE", "format_time", "console", "print_json", "sessions_table", "page_note",
    "session_facts", "traces_table", "span_attributes", "span_kind", "span_tree", "strip_tree", "render_tree",
    "node_label", "tail_line", "message_lines", "transcript_lines", "span_details_lines",
]


# --- figures ----------------------------------------------------------------------------------
def format_duration(ms: float | None) -> str:
    """``""`` for None, else ``850ms``, ``1.50s`` or ``2.5m``."""
    if ms is None:
        return ""
    if ms >= 60_000:
        return f"{ms / 60_000:.1f}m"
    if ms >= 1000:
        return f"{ms / 1000:.2f}s"
    return f"{ms:.0f}ms"


#: The legend of the ``*`` after an estimated cost.
ESTIMATED_NOTE = "* cost estimated from the model price table (the spans carried no cost)"


def format_usd(cost: float | None) -> str:
    """A cost in USD with four decimals, or two significant digits when that shows more
    (``$0.0123``, ``$1.5000``, ``$0.000012``; at most 10 decimals); ``$0.0000`` for none
    or less than that shows."""
    cost = cost or 0.0
    if cost <= 0:
        return "$0.0000"
    decimals = min(10, max(4, 1 - math.floor(math.log10(cost))))
    text = f"{cost:.{decimals}f}"
    if float(text) == 0:
        return "$0.0000"
    return "$" + (text.rstrip("0") if decimals > 4 else text)


def format_cost(session: dict) -> str:
    """A session's ``cost_usd`` (:func:`format_usd`); ``*`` when it is (partly) estimated
    (:data:`ESTIMATED_NOTE` says so under the table)."""
    return format_usd(session.get("cost_usd")) + ("*" if session.get("cost_estimated") else "")


def cost_note(sessions: list[dict]) -> str | None:
    """:data:`ESTIMATED_NOTE` when a cost of ``sessions`` is estimated, else None."""
    return ESTIMATED_NOTE if any(s.get("cost_estimated") for s in sessions) else None


def format_time(iso: str | None) -> str:
    """An ISO-8601 time to the second, with a space for the ``T``; ``""`` for None."""
    return (iso or "").replace("T", " ")[:19]


# --- output -----------------------------------------------------------------------------------
def console():
    from rich.console import Console

    out = Console()
    if not out.is_terminal:  # pipes and tests: no wrapping of the table's columns
        out = Console(width=max(out.width, 200))
    return out


def print_json(data: Any) -> None:
    print(json.dumps(data, indent=2))


# --- sessions ---------------------------------------------------------------------------------
_STATUS_STYLE = {"failed": "red", "completed": "green", "active": "cyan", "escalated": "yellow", "idle": "dim",
                 "abandoned": "dim"}


def sessions_table(title: str, sessions: list[dict], show_thread: bool = True):
    from rich.table import Table

    table = Table(title=title, title_justify="left", header_style="bold")
    table.add_column("session")
    table.add_column("name")
    table.add_column("status")
    table.add_column("user")
    if show_thread:
        table.add_column("thread")
    table.add_column("started")
    for label in ("messages", "duration", "traces", "spans", "errors", "tokens", "cost"):
        table.add_column(label, justify="right")
    for s in sessions:
        status = s.get("status", "")
        row = [s["id"], s.get("name") or "", f"[{_STATUS_STYLE.get(status, '')}]{status}[/]" if status else "",
               s.get("user_id") or ""]
        if show_thread:
            row.append(s.get("thread_id") or "")
        figures = s.get("conversation")
        row += [format_time(s.get("start_time")), str(figures["message_count"]) if figures else "",
                format_duration(s.get("duration_ms")),
                str(s.get("trace_count", 0)), str(s.get("span_count", 0)), str(s.get("error_count", 0)),
                str(s.get("total_tokens", 0)), format_cost(s)]
        table.add_row(*row)
    return table


def page_note(body: dict) -> str:
    """``1-20 of 57`` for a page of a list reply, with a note when the reply is partial."""
    shown = len(body.get("data", []))
    offset = body.get("offset", 0)
    note = f"{offset + 1 if shown else 0}-{offset + shown} of {body.get('total', 0)}"
    if body.get("partial"):
        note += " (partial: a filter was applied to a bounded set of candidates; more may match)"
    return note


def session_facts(session: dict) -> list[str]:
    """The lines under a session's table: models, services, agents, tools, metadata (those it has)."""
    lines = []
    facts = [("models", session.get("models")), ("services", session.get("services")),
             ("agents", session.get("agents")), ("tools", session.get("tools"))]
    for label, values in facts:
        if values:
            lines.append(f"[bold]{label}:[/] {', '.join(values)}")
    if session.get("metadata"):
        lines.append("[bold]metadata:[/] " + ", ".join(f"{k}={v}" for k, v in session["metadata"].items()))
    lines += conversation_lines(session.get("conversation"))
    return lines


def conversation_lines(figures: dict | None) -> list[str]:
    """The conversation figures of a session (``ConversationFigures`` JSON), when it has messages or calls."""
    from rich.markup import escape

    if not figures or not (figures["message_count"] or figures["model_calls"] or figures["tool_calls"]):
        return []
    lines = [f"[bold]messages:[/] {figures['message_count']} ({figures['user_messages']} user, "
             f"{figures['assistant_messages']} assistant)"]
    if figures.get("first_user_message"):
        lines.append(f"[bold]first user message:[/] {escape(figures['first_user_message'])}")
    if figures.get("last_assistant_message"):
        lines.append(f"[bold]last assistant message:[/] {escape(figures['last_assistant_message'])}")
    calls = f"[bold]model calls:[/] {figures['model_calls']}"
    if figures.get("response_latency_ms") is not None:
        calls += f", mean {format_duration(figures['response_latency_ms'])}"
    if figures.get("time_to_first_token_ms") is not None:
        calls += f", first token {format_duration(figures['time_to_first_token_ms'])}"
    lines.append(calls)
    if figures["tool_calls"]:
        lines.append(f"[bold]tool calls:[/] {figures['tool_calls']} ({figures['tool_errors']} failed), "
                     f"mean {format_duration(figures['tool_latency_ms'])}")
    return lines


def traces_table(session: dict):
    from rich.table import Table

    table = Table(title="traces", title_justify="left", header_style="bold")
    for label in ("trace", "root span", "started"):
        table.add_column(label)
    for label in ("duration", "spans", "errors", "tokens", "cost"):
        table.add_column(label, justify="right")
    for t in session.get("traces", []):
        table.add_row(t["trace_id"], t["root_name"], format_time(t["start_time"]), format_duration(t["duration_ms"]),
                      str(t["span_count"]), str(t["error_count"]), str(t["total_tokens"]), format_usd(t["cost_usd"]))
    return table


# --- span kinds and the tree ------------------------------------------------------------------
def span_attributes(span: dict) -> dict[str, Any]:
    """An OTLP/JSON span's scalar attributes as a dict (array and kvlist values are left out)."""
    out = {}
    for kv in span.get("attributes", []):
        value = kv.get("value", {})
        for key in ("stringValue", "intValue", "doubleValue", "boolValue"):
            if key in value:
                out[kv["key"]] = value[key]
                break
    return out


def span_kind(span: dict, attributes: dict[str, Any]) -> str:
    """``error``, ``guardrail``, ``tool``, ``agent``, ``llm`` or ``span`` for an OTLP/JSON span."""
    if span.get("status", {}).get("code") == 2 or any(e.get("name") == "exception" for e in span.get("events", [])):
        return "error"
    operation = str(attributes.get("gen_ai.operation.name") or attributes.get("openinference.span.kind") or "").lower()
    name = span.get("name", "").lower()
    if "guardrail" in operation or name.startswith("guardrail") or "guardrail.name" in attributes:
        return "guardrail"
    if operation in ("execute_tool", "tool") or "gen_ai.tool.name" in attributes:
        return "tool"
    if operation in ("invoke_agent", "create_agent", "agent", "handoff") or "gen_ai.agent.name" in attributes:
        return "agent"
    if operation in ("chat", "text_completion", "generate_content", "embeddings", "llm") \
            or "gen_ai.request.model" in attributes:
        return "llm"
    return "span"


_KIND_STYLE = {"llm": "magenta", "tool": "blue", "agent": "green", "guardrail": "yellow", "error": "bold red",
               "span": "dim"}
_KIND_LABEL = {"llm": "LLM", "tool": "tool", "agent": "agent", "guardrail": "guardrail", "error": "error",
               "span": "span"}


def _span_node(span: dict) -> dict:
    """A span as a tree node (the keys, in this order, are what ``sessions get --tree --json`` prints)."""
    attributes = span_attributes(span)
    start, end = int(span.get("startTimeUnixNano", 0)), int(span.get("endTimeUnixNano", 0))
    return {
        "name": span.get("name", ""), "kind": span_kind(span, attributes), "span_id": span.get("spanId"),
        "parent_span_id": span.get("parentSpanId") or None, "trace_id": span["traceId"],
        "start_unix_nano": start, "duration_ms": max(0, end - start) / 1e6,
        "input_tokens": int(attributes.get("gen_ai.usage.input_tokens") or 0),
        "output_tokens": int(attributes.get("gen_ai.usage.output_tokens") or 0),
        "model": attributes.get("gen_ai.response.model") or attributes.get("gen_ai.request.model"),
        "error": span.get("status", {}).get("message") or None, "children": [],
    }


def span_tree(session: dict, traces_data: dict) -> list[dict]:
    """The session's spans as nested nodes per trace (in the session's trace order).

    A span whose parent is not in ``traces_data`` is a root; siblings and the roots of a trace
    are in start-time order; traces the session does not list come last, by trace id.
    """
    spans = [span for rs in traces_data.get("resourceSpans", []) for ss in rs.get("scopeSpans", [])
             for span in ss.get("spans", [])]
    nodes: dict[tuple[str, str], dict] = {(span["traceId"], span["spanId"]): _span_node(span) for span in spans}
    roots: dict[str, list[dict]] = {}
    for (trace_id, _span_id), node in nodes.items():
        parent = nodes.get((trace_id, node["parent_span_id"])) if node["parent_span_id"] else None
        (parent["children"] if parent else roots.setdefault(trace_id, [])).append(node)
    for node in nodes.values():
        node["children"].sort(key=lambda n: n["start_unix_nano"])
    order = [t["trace_id"] for t in session.get("traces", [])]
    order += sorted(set(roots) - set(order))
    return [root for trace_id in order for root in sorted(roots.get(trace_id, []), key=lambda n: n["start_unix_nano"])]


def strip_tree(nodes: list[dict]) -> list[dict]:
    """Plain copies of the nodes (for JSON output)."""
    return [{k: v for k, v in {**n, "children": strip_tree(n["children"])}.items()} for n in nodes]


def node_label(node: dict) -> str:
    """One span's line: kind, name, duration, tokens, model, error message (rich markup)."""
    from rich.markup import escape

    kind = node["kind"]
    parts = [f"[{_KIND_STYLE[kind]}]{_KIND_LABEL[kind]:>9}[/] {escape(node['name'])}",
             f"[dim]{format_duration(node['duration_ms'])}[/]"]
    if node["input_tokens"] or node["output_tokens"]:
        parts.append(f"{node['input_tokens']}→{node['output_tokens']} tok")
    if node["model"]:
        parts.append(f"[dim]{escape(str(node['model']))}[/]")
    if node["error"]:
        parts.append(f"[red]{escape(node['error'])}[/]")
    return "  ".join(parts)


def render_tree(session: dict, roots: list[dict]):
    from rich.markup import escape
    from rich.tree import Tree

    tree = Tree(f"[bold]{escape(session.get('name') or session['id'])}[/] [dim]{escape(session['id'])}[/]")

    def add(branch, node) -> None:
        child = branch.add(node_label(node))
        for grandchild in node["children"]:
            add(child, grandchild)

    for root in roots:
        add(tree, root)
    return tree


def tail_line(span: dict) -> str:
    """A span as ``sessions tail`` prints it: local start time, trace id prefix, its label."""
    node = _span_node(span)
    stamp = time.strftime("%H:%M:%S", time.localtime(node["start_unix_nano"] / 1e9))
    return f"[dim]{stamp}[/] {span['traceId'][:8]} {node_label(node)}"


# --- transcripts ------------------------------------------------------------------------------
_ROLE_STYLE = {"system": "yellow", "user": "bold cyan", "assistant": "bold green", "tool": "blue"}
_INDENT = "    "


def _value_text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def _part_text(part: dict) -> str:
    """A content part as text: its text, or ``[image image/png https://...]`` for media."""
    kind = part.get("type")
    if kind in ("text", "reasoning"):
        text = str(part.get("text", ""))
        return f"(reasoning) {text}" if kind == "reasoning" else text
    where = part.get("uri") or part.get("file_id") or (f"{part['size']} chars" if part.get("size") else "")
    if not where and part.get("data"):
        where = f"{len(part['data'])} chars inline"
    return "[" + " ".join(str(x) for x in (kind, part.get("mime_type"), where) if x) + "]"


def message_lines(message: dict) -> list[str]:
    """One message as rich-markup lines: the role (coloured) and its text, then each tool call
    indented; a tool result names the call it answers; model and tokens dimmed."""
    from rich.markup import escape

    role = message.get("role", "")
    head = f"[{_ROLE_STYLE.get(role, '')}]{role:>9}[/]"
    facts = []
    if message.get("tool_call_id"):
        facts.append(f"[dim]↩ {escape(message['tool_call_id'])}[/]")
    if message.get("name"):
        facts.append(f"[dim]({escape(message['name'])})[/]")
    if message.get("raw"):
        facts.append("[red](raw)[/]")
    if message.get("redacted"):
        facts.append("[dim](redacted)[/]")
    text = "\n".join(_part_text(p) for p in message.get("content") or [])
    body = escape(text).replace("\n", "\n" + " " * 10)
    lines = [" ".join(x for x in (head, *facts, body) if x)]
    for call in message.get("tool_calls") or []:
        arguments = call.get("arguments")
        lines.append(f"{_INDENT}          [blue]→ {escape(str(call.get('name') or '?'))}[/]"
                     f"({escape(_value_text(arguments) if arguments is not None else '')})"
                     + (f" [dim]{escape(call['id'])}[/]" if call.get("id") else ""))
    notes = [escape(str(message["model"]))] if message.get("model") else []
    usage = message.get("usage")
    if usage:
        notes.append(f"{usage.get('input_tokens', 0)}→{usage.get('output_tokens', 0)} tok")
    if message.get("finish_reason") and message.get("finish_reason") not in ("stop", "tool_calls"):
        notes.append(f"finish: {escape(message['finish_reason'])}")
    if notes:
        lines.append(f"{_INDENT}      [dim]{' · '.join(notes)}[/]")
    return lines


def transcript_lines(body: dict) -> list[str]:
    """A transcript page (``/messages``) as lines: a rule line where the agent changes, each
    message, a session line where a thread moves to its next session, and a note when truncated."""
    from rich.markup import escape

    lines: list[str] = []
    session = agent = None
    for message in body.get("data", []):
        if message.get("session_id") != session and "thread_id" in body:
            session, agent = message.get("session_id"), None
            lines.append(f"[bold]── session {escape(str(session))}[/]")
        if message.get("agent") and message.get("agent") != agent and message.get("role") != "user":
            marker = "handoff to" if message.get("handoff") else "agent"
            lines.append(f"[magenta]── {marker} {escape(message['agent'])}[/]")
            agent = message.get("agent")
        lines += message_lines(message)
    if not body.get("data"):
        lines.append("[dim]no messages recorded (is message content captured by the instrumentation?)[/]")
    shown = len(body.get("data", []))
    offset = body.get("offset", 0)
    if body.get("truncated"):
        lines.append(f"[dim]messages {offset + 1}-{offset + shown}; more follow (--offset {offset + shown})[/]")
    return lines


# --- one span ---------------------------------------------------------------------------------
def span_details_lines(span: dict) -> list[str]:
    """A span's details (``/spans/{span_id}``) as lines: the head, then attributes, resource,
    events, the exception and links."""
    from rich.markup import escape

    status = span.get("status") or {}
    style = "red" if status.get("code") == "error" else "green" if status.get("code") == "ok" else "dim"
    lines = [f"[bold]{escape(span.get('name', ''))}[/]  [dim]{span.get('kind')}[/]  "
             f"[{style}]{status.get('code')}[/]" + (f" {escape(status['message'])}" if status.get("message") else ""),
             f"trace {span.get('trace_id')}  span {span.get('span_id')}  parent {span.get('parent_span_id') or '-'}",
             f"{format_time(span.get('start_time'))}  {format_duration(span.get('duration_ms'))}"]
    scope = span.get("scope") or {}
    if scope.get("name"):
        lines.append(f"scope {escape(scope['name'])} {escape(scope.get('version') or '')}".rstrip())
    for title, values in (("attributes", span.get("attributes")), ("resource", span.get("resource"))):
        if values:
            lines.append(f"[bold]{title}[/]")
            lines += [f"{_INDENT}{escape(k)} = {escape(_value_text(v))}" for k, v in sorted(values.items())]
    if span.get("events"):
        lines.append("[bold]events[/]")
        for event in span["events"]:
            lines.append(f"{_INDENT}{format_time(event.get('time'))}  {escape(event.get('name', ''))}")
            lines += [f"{_INDENT * 2}{escape(k)} = {escape(_value_text(v))}"
                      for k, v in sorted((event.get("attributes") or {}).items())]
    exception = span.get("exception")
    if exception:
        lines.append(f"[bold red]exception[/] {escape(exception.get('type') or '')}: "
                     f"{escape(exception.get('message') or '')}")
        if exception.get("stacktrace"):
            lines += [f"{_INDENT}[dim]{escape(line)}[/]" for line in exception["stacktrace"].splitlines()]
    for link in span.get("links") or []:
        lines.append(f"[bold]link[/] trace {link.get('trace_id')} span {link.get('span_id')}")
    return lines
