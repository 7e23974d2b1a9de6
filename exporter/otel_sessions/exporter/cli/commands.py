"""The lookup commands: ``sessions list|get|tail|delete``, ``threads get``, ``users get``, ``grpc``.

They talk to a running service over HTTP (``--server``, default ``$OTEL_SESSIONS_SERVER`` or
``http://127.0.0.1:4318``) with the standard library; ``grpc`` calls the SessionService on
the gRPC port, grpcurl-style (JSON in, JSON out). Tables are drawn with ``rich``; ``--json``
prints the service's JSON for scripts. An unreachable service is a one-line message and exit
status 1; a lookup error (404, 400) prints the service's message and exits with 1 (2 for a
bad parameter).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

__all__ = ["add_lookup_commands", "DEFAULT_SERVER", "ServiceError", "Client", "span_kind"]

DEFAULT_SERVER = "http://127.0.0.1:4318"
SORT_CHOICES = ("start", "end", "duration", "traces", "spans", "tokens", "cost", "last_activity")


class ServiceError(Exception):
    """A lookup failed; ``exit_code`` is what the command returns."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code


class Client:
    """A small HTTP client of the REST API."""

    def __init__(self, server: str, token: str | None = None, timeout: float = 30.0) -> None:
        self.server = server.rstrip("/")
        self.token = token
        self.timeout = timeout

    def open(self, method: str, path: str, params: dict[str, Any] | None = None, timeout: float | None = None):
        query = urllib.parse.urlencode({k: v for k, v in (params or {}).items() if v not in (None, "")})
        url = self.server + path + ("?" + query if query else "")
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        request = urllib.request.Request(url, method=method, headers=headers)
        try:
            return urllib.request.urlopen(request, timeout=timeout or self.timeout)
        except urllib.error.HTTPError as exc:
            try:
                body = json.loads(exc.read())
                message = body.get("error") or exc.reason
            except ValueError:
                message = exc.reason
            raise ServiceError(f"{message} (HTTP {exc.code})", 2 if exc.code == 400 else 1) from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise ServiceError(f"cannot reach the otel-sessions service at {self.server}: {reason}. "
                               "Is `otel-sessions serve` running? Point --server or OTEL_SESSIONS_SERVER at it.") from None

    def get(self, path: str, **params: Any) -> Any:
        with self.open("GET", path, params) as response:
            return json.loads(response.read())

    def delete(self, path: str) -> None:
        with self.open("DELETE", path):
            pass


# --- formatting -------------------------------------------------------------------------------
def _duration(ms: float | None) -> str:
    if ms is None:
        return ""
    if ms >= 60_000:
        return f"{ms / 60_000:.1f}m"
    if ms >= 1000:
        return f"{ms / 1000:.2f}s"
    return f"{ms:.0f}ms"


def _cost(session: dict) -> str:
    cost = session.get("cost_usd") or 0.0
    return f"${cost:.4f}" + ("*" if session.get("cost_estimated") else "")


def _when(iso: str | None) -> str:
    return (iso or "").replace("T", " ")[:19]


_STATUS_STYLE = {"failed": "red", "completed": "green", "active": "cyan", "escalated": "yellow", "idle": "dim",
                 "abandoned": "dim"}


def _console():
    from rich.console import Console

    console = Console()
    if not console.is_terminal:  # pipes and tests: no wrapping of the table's columns
        console = Console(width=max(console.width, 200))
    return console


def _sessions_table(title: str, sessions: list[dict], show_thread: bool = True):
    from rich.table import Table

    table = Table(title=title, title_justify="left", header_style="bold")
    table.add_column("session")
    table.add_column("name")
    table.add_column("status")
    table.add_column("user")
    if show_thread:
        table.add_column("thread")
    table.add_column("started")
    for label in ("duration", "traces", "spans", "errors", "tokens", "cost"):
        table.add_column(label, justify="right")
    for s in sessions:
        status = s.get("status", "")
        row = [s["id"], s.get("name") or "", f"[{_STATUS_STYLE.get(status, '')}]{status}[/]" if status else "",
               s.get("user_id") or ""]
        if show_thread:
            row.append(s.get("thread_id") or "")
        row += [_when(s.get("start_time")), _duration(s.get("duration_ms")), str(s.get("trace_count", 0)),
                str(s.get("span_count", 0)), str(s.get("error_count", 0)), str(s.get("total_tokens", 0)), _cost(s)]
        table.add_row(*row)
    return table


def _page_note(body: dict) -> str:
    shown = len(body.get("data", []))
    offset = body.get("offset", 0)
    note = f"{offset + 1 if shown else 0}-{offset + shown} of {body.get('total', 0)}"
    if body.get("partial"):
        note += " (partial: a filter was applied to a bounded set of candidates; more may match)"
    return note


# --- span kinds and the tree ------------------------------------------------------------------
def _attributes(span: dict) -> dict[str, Any]:
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


def span_tree(session: dict, traces_data: dict) -> list[dict]:
    """The session's spans as nested nodes per trace (in the session's trace order)."""
    spans = [span for rs in traces_data.get("resourceSpans", []) for ss in rs.get("scopeSpans", [])
             for span in ss.get("spans", [])]
    nodes: dict[tuple[str, str], dict] = {}
    for span in spans:
        attributes = _attributes(span)
        start, end = int(span.get("startTimeUnixNano", 0)), int(span.get("endTimeUnixNano", 0))
        tokens_in = int(attributes.get("gen_ai.usage.input_tokens") or 0)
        tokens_out = int(attributes.get("gen_ai.usage.output_tokens") or 0)
        nodes[(span["traceId"], span["spanId"])] = {
            "name": span.get("name", ""), "kind": span_kind(span, attributes), "span_id": span["spanId"],
            "parent_span_id": span.get("parentSpanId") or None, "trace_id": span["traceId"],
            "start_unix_nano": start, "duration_ms": max(0, end - start) / 1e6,
            "input_tokens": tokens_in, "output_tokens": tokens_out,
            "model": attributes.get("gen_ai.response.model") or attributes.get("gen_ai.request.model"),
            "error": span.get("status", {}).get("message") or None, "children": [],
        }
    roots: dict[str, list[dict]] = {}
    for (trace_id, _span_id), node in nodes.items():
        parent = nodes.get((trace_id, node["parent_span_id"])) if node["parent_span_id"] else None
        (parent["children"] if parent else roots.setdefault(trace_id, [])).append(node)
    for node in nodes.values():
        node["children"].sort(key=lambda n: n["start_unix_nano"])
    order = [t["trace_id"] for t in session.get("traces", [])]
    order += sorted(set(roots) - set(order))
    return [root for trace_id in order for root in sorted(roots.get(trace_id, []), key=lambda n: n["start_unix_nano"])]


def _node_label(node: dict) -> str:
    from rich.markup import escape

    kind = node["kind"]
    parts = [f"[{_KIND_STYLE[kind]}]{_KIND_LABEL[kind]:>9}[/] {escape(node['name'])}",
             f"[dim]{_duration(node['duration_ms'])}[/]"]
    if node["input_tokens"] or node["output_tokens"]:
        parts.append(f"{node['input_tokens']}→{node['output_tokens']} tok")
    if node["model"]:
        parts.append(f"[dim]{escape(str(node['model']))}[/]")
    if node["error"]:
        parts.append(f"[red]{escape(node['error'])}[/]")
    return "  ".join(parts)


def _render_tree(session: dict, roots: list[dict]):
    from rich.markup import escape
    from rich.tree import Tree

    tree = Tree(f"[bold]{escape(session.get('name') or session['id'])}[/] [dim]{escape(session['id'])}[/]")

    def add(branch, node) -> None:
        child = branch.add(_node_label(node))
        for grandchild in node["children"]:
            add(child, grandchild)

    for root in roots:
        add(tree, root)
    return tree


def _strip_tree(nodes: list[dict]) -> list[dict]:
    return [{k: v for k, v in {**n, "children": _strip_tree(n["children"])}.items()} for n in nodes]


# --- commands ---------------------------------------------------------------------------------
def _client(args: argparse.Namespace) -> Client:
    return Client(args.server, args.token)


def _print_json(data: Any) -> None:
    print(json.dumps(data, indent=2))


def cmd_sessions_list(args: argparse.Namespace) -> int:
    params: dict[str, Any] = {
        "user_id": args.user, "thread_id": args.thread, "name": args.name, "status": args.status,
        "service": args.service, "model": args.model, "sort_by": args.sort, "sort_order": args.order,
        "limit": args.limit, "offset": args.offset,
    }
    if args.since:
        from otel_sessions.exporter.serve.settings import parse_duration

        try:
            seconds = parse_duration(args.since)
        except ValueError as exc:
            raise ServiceError(f"--since: {exc}", 2) from None
        params["start_time"] = int((time.time() - seconds) * 1000)
    for pair in args.metadata or ():
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ServiceError(f"--metadata: use KEY=VALUE (got {pair!r})", 2)
        params[f"metadata.{key}"] = value
    body = _client(args).get("/v1/sessions", **params)
    if args.json:
        _print_json(body)
        return 0
    console = _console()
    console.print(_sessions_table("sessions", body["data"]))
    console.print(_page_note(body), style="dim")
    return 0


def cmd_sessions_get(args: argparse.Namespace) -> int:
    client = _client(args)
    path = "/v1/sessions/" + urllib.parse.quote(args.id, safe="")
    session = client.get(path)
    roots = span_tree(session, client.get(path + "/spans", format="otlp-json")) if args.tree else None
    if args.json:
        _print_json({**session, "tree": _strip_tree(roots)} if roots is not None else session)
        return 0
    from rich.table import Table

    console = _console()
    console.print(_sessions_table("session", [session]))
    facts = [("models", session.get("models")), ("services", session.get("services")),
             ("agents", session.get("agents")), ("tools", session.get("tools"))]
    for label, values in facts:
        if values:
            console.print(f"[bold]{label}:[/] {', '.join(values)}")
    if session.get("metadata"):
        console.print("[bold]metadata:[/] " + ", ".join(f"{k}={v}" for k, v in session["metadata"].items()))
    if roots is not None:
        console.print(_render_tree(session, roots))
        return 0
    table = Table(title="traces", title_justify="left", header_style="bold")
    for label in ("trace", "root span", "started"):
        table.add_column(label)
    for label in ("duration", "spans", "errors", "tokens", "cost"):
        table.add_column(label, justify="right")
    for t in session.get("traces", []):
        table.add_row(t["trace_id"], t["root_name"], _when(t["start_time"]), _duration(t["duration_ms"]),
                      str(t["span_count"]), str(t["error_count"]), str(t["total_tokens"]), f"${t['cost_usd']:.4f}")
    console.print(table)
    return 0


def cmd_sessions_tail(args: argparse.Namespace) -> int:
    client = _client(args)
    path = "/v1/sessions/" + urllib.parse.quote(args.id, safe="") + "/tail"
    console = _console()
    response = client.open("GET", path, timeout=3600 * 24)
    try:
        for raw in response:
            line = raw.decode().rstrip("\n")
            if line.startswith(": tailing"):
                if not args.json:
                    console.print(f"[dim]following {args.id}; new spans appear below (Ctrl-C to stop)[/]")
                continue
            if not line.startswith("data: "):
                continue
            data = json.loads(line[len("data: "):])
            if args.json:
                print(json.dumps(data), flush=True)
                continue
            for rs in data.get("resourceSpans", []):
                for ss in rs.get("scopeSpans", []):
                    for span in ss.get("spans", []):
                        attributes = _attributes(span)
                        start, end = int(span.get("startTimeUnixNano", 0)), int(span.get("endTimeUnixNano", 0))
                        node = {"name": span.get("name", ""), "kind": span_kind(span, attributes),
                                "duration_ms": max(0, end - start) / 1e6,
                                "input_tokens": int(attributes.get("gen_ai.usage.input_tokens") or 0),
                                "output_tokens": int(attributes.get("gen_ai.usage.output_tokens") or 0),
                                "model": attributes.get("gen_ai.response.model") or attributes.get("gen_ai.request.model"),
                                "error": span.get("status", {}).get("message") or None}
                        stamp = time.strftime("%H:%M:%S", time.localtime(start / 1e9))
                        console.print(f"[dim]{stamp}[/] {span['traceId'][:8]} {_node_label(node)}")
            sys.stdout.flush()
    except KeyboardInterrupt:
        return 0
    finally:
        response.close()
    return 0


def cmd_sessions_delete(args: argparse.Namespace) -> int:
    _client(args).delete("/v1/sessions/" + urllib.parse.quote(args.id, safe=""))
    print(f"deleted {args.id}")
    return 0


def cmd_threads_get(args: argparse.Namespace) -> int:
    body = _client(args).get("/v1/threads/" + urllib.parse.quote(args.id, safe=""), limit=args.limit,
                             offset=args.offset)
    if args.json:
        _print_json(body)
        return 0
    console = _console()
    console.print(_sessions_table(f"thread {args.id}", body["data"], show_thread=False))
    data = body["data"]
    console.print(f"{_page_note(body)} · {sum(s['span_count'] for s in data)} spans · "
                  f"{sum(s['total_tokens'] for s in data)} tokens · ${sum(s['cost_usd'] for s in data):.4f}",
                  style="dim")
    return 0


def cmd_users_get(args: argparse.Namespace) -> int:
    body = _client(args).get("/v1/users/" + urllib.parse.quote(args.id, safe="") + "/sessions",
                             sort_by=args.sort, sort_order=args.order, limit=args.limit, offset=args.offset)
    if args.json:
        _print_json(body)
        return 0
    console = _console()
    console.print(_sessions_table(f"user {args.id}", body["data"]))
    console.print(_page_note(body), style="dim")
    return 0


def cmd_grpc(args: argparse.Namespace) -> int:
    """grpcurl-style: ``otel-sessions grpc ListSessions '{"limit": 5}'``."""
    import grpc
    from google.protobuf import json_format

    from otel_sessions.exporter.otlp_json import message_to_dict
    from otel_sessions.v1 import session_service_pb2 as pb

    def to_dict(message) -> dict:
        if message.DESCRIPTOR.full_name.startswith("opentelemetry."):
            return message_to_dict(message)  # OTLP/JSON: hex ids
        return json_format.MessageToDict(message, preserving_proto_field_name=True)

    service = pb.DESCRIPTOR.services_by_name["SessionService"]
    method = service.methods_by_name.get(args.method)
    if method is None:
        raise ServiceError(f"no method {args.method!r}; SessionService has {', '.join(service.methods_by_name)}", 2)
    from google.protobuf import message_factory

    request_class = message_factory.GetMessageClass(method.input_type)
    response_class = message_factory.GetMessageClass(method.output_type)
    try:
        request = json_format.Parse(args.request or "{}", request_class())
    except json_format.ParseError as exc:
        raise ServiceError(f"request: {exc}", 2) from None
    metadata = (("authorization", f"Bearer {args.token}"),) if args.token else None
    path = f"/{service.full_name}/{method.name}"
    with grpc.insecure_channel(args.address) as channel:
        kind = channel.unary_stream if method.server_streaming else channel.unary_unary
        call = kind(path, request_serializer=lambda m: m.SerializeToString(),
                    response_deserializer=response_class.FromString)
        try:
            if method.server_streaming:
                for message in call(request, metadata=metadata):
                    print(json.dumps(to_dict(message)), flush=True)
            else:
                message = call(request, metadata=metadata, timeout=30)
                print(json.dumps(to_dict(message), indent=2))
        except grpc.RpcError as exc:
            code = exc.code()
            if code == grpc.StatusCode.UNAVAILABLE:
                raise ServiceError(f"cannot reach the SessionService at {args.address}: {exc.details()}") from None
            raise ServiceError(f"{code.name}: {exc.details()}",
                               2 if code == grpc.StatusCode.INVALID_ARGUMENT else 1) from None
        except KeyboardInterrupt:
            return 0
    return 0


# --- parser -----------------------------------------------------------------------------------
def _common(parser: argparse.ArgumentParser, json_flag: bool = True) -> None:
    parser.add_argument("--server", default=os.environ.get("OTEL_SESSIONS_SERVER") or DEFAULT_SERVER,
                        help="HTTP address of the service [env OTEL_SESSIONS_SERVER; default: %(default)s]")
    parser.add_argument("--token", default=os.environ.get("OTEL_SESSIONS_QUERY_TOKEN") or None,
                        help="query token, when the service has one [env OTEL_SESSIONS_QUERY_TOKEN]")
    if json_flag:
        parser.add_argument("--json", action="store_true", help="print JSON instead of tables")


def _paging(parser: argparse.ArgumentParser, limit: int | None = None) -> None:
    parser.add_argument("--limit", type=int, default=limit, help="page size (at most 500)")
    parser.add_argument("--offset", type=int, default=None, help="sessions to skip")


def _sorting(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--sort", choices=SORT_CHOICES, default=None, help="sort key (default: start)")
    parser.add_argument("--order", choices=("asc", "desc"), default=None, help="sort order (default: desc)")


def add_lookup_commands(sub: argparse._SubParsersAction) -> None:
    sessions = sub.add_parser("sessions", help="list, show, follow and delete sessions").add_subparsers(
        dest="action", metavar="ACTION", required=True)
    p = sessions.add_parser("list", help="list sessions with filters and sort")
    _common(p)
    p.add_argument("--user", help="user id")
    p.add_argument("--thread", help="thread id")
    p.add_argument("--name", help="text in the session name (case-insensitive)")
    p.add_argument("--status", help="active, idle, completed, failed, abandoned or escalated (comma-separated)")
    p.add_argument("--service", help="service.name")
    p.add_argument("--model", help="model name or prefix")
    p.add_argument("--since", help="sessions started within this long (e.g. 30m, 1h, 7d)")
    p.add_argument("--metadata", action="append", metavar="KEY=VALUE", help="session metadata (repeatable)")
    _sorting(p)
    _paging(p)
    p.set_defaults(func=cmd_sessions_list)

    p = sessions.add_parser("get", help="one session with its traces, or its span tree")
    _common(p)
    p.add_argument("id")
    p.add_argument("--tree", action="store_true", help="show the span tree (LLM, tool, agent, guardrail, error)")
    p.set_defaults(func=cmd_sessions_get)

    p = sessions.add_parser("tail", help="follow a session: print its spans as they arrive")
    _common(p)
    p.add_argument("id")
    p.set_defaults(func=cmd_sessions_tail)

    p = sessions.add_parser("delete", help="delete a session")
    _common(p, json_flag=False)
    p.add_argument("id")
    p.set_defaults(func=cmd_sessions_delete)

    threads = sub.add_parser("threads", help="show threads").add_subparsers(dest="action", metavar="ACTION",
                                                                             required=True)
    p = threads.add_parser("get", help="a thread's sessions in time order")
    _common(p)
    p.add_argument("id")
    _paging(p)
    p.set_defaults(func=cmd_threads_get)

    users = sub.add_parser("users", help="show users").add_subparsers(dest="action", metavar="ACTION", required=True)
    p = users.add_parser("get", help="a user's sessions")
    _common(p)
    p.add_argument("id")
    _sorting(p)
    _paging(p)
    p.set_defaults(func=cmd_users_get)

    p = sub.add_parser("grpc", help="call a SessionService method, grpcurl-style (JSON in, JSON out)")
    p.add_argument("method", help="ListSessions, GetSession, GetSessionSpans, TailSession, GetThread, DeleteSession")
    p.add_argument("request", nargs="?", default="{}", help="the request as JSON (default: {})")
    p.add_argument("--address", default=os.environ.get("OTEL_SESSIONS_GRPC") or "127.0.0.1:4317",
                   help="gRPC address of the service [env OTEL_SESSIONS_GRPC; default: %(default)s]")
    p.add_argument("--token", default=os.environ.get("OTEL_SESSIONS_QUERY_TOKEN") or None,
                   help="query token, when the service has one [env OTEL_SESSIONS_QUERY_TOKEN]")
    p.set_defaults(func=cmd_grpc)


def run(args: argparse.Namespace) -> int:
    """Run a lookup command; errors become a message on stderr and an exit status."""
    try:
        return args.func(args)
    except ServiceError as exc:
        print(f"otel-sessions: error: {exc}", file=sys.stderr, flush=True)
        return exc.exit_code
    except BrokenPipeError:
        return 0
