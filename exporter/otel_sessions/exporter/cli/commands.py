"""The lookup commands: ``sessions list|get|transcript|tail|logs|delete``,
``threads get|transcript|logs``, ``users get`` (and ``grpc``).

They talk to a running service over HTTP (``--server``, default ``$OTEL_SESSIONS_SERVER`` or
``http://127.0.0.1:4318``) with :class:`~otel_sessions.exporter.cli.client.Client`; ``grpc``
(grpc_command.py) calls the SessionService on the gRPC port. Tables are drawn by render.py;
``--json`` prints the service's JSON for scripts. An unreachable service is a one-line message
and exit status 1; a lookup error (404, 400) prints the service's message and exits with 1 (2
for a bad parameter).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import urllib.parse
from typing import Any

from otel_sessions.exporter.cli import render
from otel_sessions.exporter.cli.client import DEFAULT_SERVER, TAIL_SILENCE_S, Client, ServiceError, tail_lines
from otel_sessions.exporter.cli.grpc_command import add_grpc_command
from otel_sessions.exporter.cli.logs_command import (
    add_session_logs_command,
    add_thread_logs_command,
    log_line,
    otlp_records,
)
from otel_sessions.exporter.cli.token import QUERY_ENV, add_token_arguments, client_token

__all__ = ["add_lookup_commands", "run"]

SORT_CHOICES = ("start", "end", "duration", "traces", "spans", "tokens", "cost", "last_activity")


def _client(args: argparse.Namespace) -> Client:
    return Client(args.server, args.token)


def _quoted(id_: str) -> str:
    return urllib.parse.quote(id_, safe="")


def cmd_sessions_list(args: argparse.Namespace) -> int:
    params: dict[str, Any] = {
        "user_id": args.user, "thread_id": args.thread, "name": args.name, "status": args.status,
        "service": args.service, "model": args.model, "agent": args.agent, "tool": args.tool,
        "environment": args.environment, "q": args.search, "sort_by": args.sort, "sort_order": args.order,
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
        render.print_json(body)
        return 0
    console = render.console()
    console.print(render.sessions_table("sessions", body["data"]))
    _notes(console, body["data"], render.page_note(body))
    return 0


def _notes(console, sessions: list[dict], note: str | None) -> None:
    """The lines under a sessions table: the page note, the legend of ``*`` when it appears."""
    for line in (note, render.cost_note(sessions)):
        if line:
            console.print(line, style="dim", highlight=False)


def cmd_sessions_get(args: argparse.Namespace) -> int:
    client = _client(args)
    path = "/v1/sessions/" + _quoted(args.id)
    if args.span:
        if args.tree:
            raise ServiceError("--span and --tree do not go together", 2)
        span = client.get(path + "/spans/" + _quoted(args.span), trace_id=args.trace)
        if args.json:
            render.print_json(span)
            return 0
        console = render.console()
        for line in render.span_details_lines(span):
            console.print(line, highlight=False)
        return 0
    if args.trace:
        raise ServiceError("--trace needs --span", 2)
    session = client.get(path)
    roots = render.span_tree(session, client.get(path + "/spans", format="otlp-json")) if args.tree else None
    if args.json:
        render.print_json({**session, "tree": render.strip_tree(roots)} if roots is not None else session)
        return 0
    console = render.console()
    console.print(render.sessions_table("session", [session]))
    _notes(console, [session], None)
    for line in render.session_facts(session):
        console.print(line)
    console.print(render.render_tree(session, roots) if roots is not None else render.traces_table(session))
    return 0


def _print_transcript(args: argparse.Namespace, path: str) -> int:
    body = _client(args).get(path, limit=args.limit, offset=args.offset)
    if args.json:
        render.print_json(body)
        return 0
    console = render.console()
    for line in render.transcript_lines(body):
        console.print(line, highlight=False)
    return 0


def cmd_sessions_transcript(args: argparse.Namespace) -> int:
    return _print_transcript(args, "/v1/sessions/" + _quoted(args.id) + "/messages")


def cmd_threads_transcript(args: argparse.Namespace) -> int:
    return _print_transcript(args, "/v1/threads/" + _quoted(args.id) + "/messages")


def cmd_sessions_tail(args: argparse.Namespace) -> int:
    """Follow a session until Ctrl-C (exit 0). The service going away, or no line for
    :data:`TAIL_SILENCE_S`, is one line on stderr and exit status 1."""
    path = "/v1/sessions/" + _quoted(args.id) + "/tail"
    console = render.console()
    client = _client(args)
    event: list[str | None] = [None]  # the name of the event being read (log records: "logs")
    response = client.open("GET", path, timeout=TAIL_SILENCE_S)
    try:
        for raw in tail_lines(response, client.server, args.id, TAIL_SILENCE_S):
            _tail_line(args, console, raw.decode(errors="replace").rstrip("\n"), event)
    except KeyboardInterrupt:
        return 0
    finally:
        response.close()


def _tail_line(args: argparse.Namespace, console, line: str, event: list[str | None] | None = None) -> None:
    """Print what one line of the event stream carries (comments other than the first are
    keep-alives, printed as nothing); ``event`` holds the name of the event being read, across
    lines (log records come as ``event: logs``)."""
    event = event if event is not None else [None]
    if line.startswith(": tailing"):
        if not args.json:
            console.print(f"[dim]following {args.id}; new spans appear below (Ctrl-C to stop)[/]")
        return
    if line.startswith("event: "):
        event[0] = line[len("event: "):]
        return
    if not line.startswith("data: "):
        if not line:
            event[0] = None
        return
    try:
        data = json.loads(line[len("data: "):])
    except ValueError:
        return
    if args.json:
        print(json.dumps(data), flush=True)
        return
    if event[0] == "logs":  # log records: one line each, as `sessions logs` prints them
        for record in otlp_records(data):
            console.print(log_line(record), highlight=False, soft_wrap=True)
        sys.stdout.flush()
        return
    for rs in data.get("resourceSpans", []):
        for ss in rs.get("scopeSpans", []):
            for span in ss.get("spans", []):
                console.print(render.tail_line(span))
    sys.stdout.flush()


def cmd_sessions_delete(args: argparse.Namespace) -> int:
    _client(args).delete("/v1/sessions/" + _quoted(args.id))
    print(f"deleted {args.id}")
    return 0


def cmd_threads_get(args: argparse.Namespace) -> int:
    body = _client(args).get("/v1/threads/" + _quoted(args.id), limit=args.limit, offset=args.offset)
    if args.json:
        render.print_json(body)
        return 0
    console = render.console()
    console.print(render.sessions_table(f"thread {args.id}", body["data"], show_thread=False))
    data = body["data"]
    _notes(console, data, f"{render.page_note(body)} · {sum(s['span_count'] for s in data)} spans · "
                          f"{sum(s['total_tokens'] for s in data)} tokens · "
                          f"{render.format_usd(sum(s['cost_usd'] for s in data))}")
    return 0


def cmd_users_get(args: argparse.Namespace) -> int:
    body = _client(args).get("/v1/users/" + _quoted(args.id) + "/sessions",
                             sort_by=args.sort, sort_order=args.order, limit=args.limit, offset=args.offset)
    if args.json:
        render.print_json(body)
        return 0
    console = render.console()
    console.print(render.sessions_table(f"user {args.id}", body["data"]))
    _notes(console, body["data"], render.page_note(body))
    return 0


# --- parser -----------------------------------------------------------------------------------
def _common(parser: argparse.ArgumentParser, json_flag: bool = True) -> None:
    parser.add_argument("--server", default=os.environ.get("OTEL_SESSIONS_SERVER") or DEFAULT_SERVER,
                        help="HTTP address of the service [env OTEL_SESSIONS_SERVER; default: %(default)s]")
    add_token_arguments(parser, QUERY_ENV, "query token")
    if json_flag:
        parser.add_argument("--json", action="store_true", help="print JSON instead of tables")


def _paging(parser: argparse.ArgumentParser, limit: int | None = None) -> None:
    parser.add_argument("--limit", type=int, default=limit, help="page size (at most 500)")
    parser.add_argument("--offset", type=int, default=None, help="sessions to skip")


def _message_paging(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--limit", type=int, default=None, help="messages per page (default 500, at most 2000)")
    parser.add_argument("--offset", type=int, default=None, help="messages to skip")


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
    p.add_argument("--agent", help="agent name (gen_ai.agent.name)")
    p.add_argument("--tool", help="tool name (gen_ai.tool.name)")
    p.add_argument("--environment", help="deployment environment (deployment.environment.name)")
    p.add_argument("--search", metavar="TEXT",
                   help="text in the name, id, user, models, services, agents, tools or environments, or in the "
                        "first user or last assistant message")
    p.add_argument("--since", help="sessions started within this long (e.g. 30m, 1h, 7d)")
    p.add_argument("--metadata", action="append", metavar="KEY=VALUE", help="session metadata (repeatable)")
    _sorting(p)
    _paging(p)
    p.set_defaults(func=cmd_sessions_list)

    p = sessions.add_parser("get", help="one session with its traces, or its span tree")
    _common(p)
    p.add_argument("id")
    p.add_argument("--tree", action="store_true", help="show the span tree (LLM, tool, agent, guardrail, error)")
    p.add_argument("--span", metavar="SPAN_ID", help="show one span in full (attributes, events, exception)")
    p.add_argument("--trace", metavar="TRACE_ID", help="with --span: the span's trace, when its id is in several")
    p.set_defaults(func=cmd_sessions_get)

    p = sessions.add_parser("transcript", help="the session's conversation: messages, tool calls and results")
    _common(p)
    p.add_argument("id")
    _message_paging(p)
    p.set_defaults(func=cmd_sessions_transcript)

    p = sessions.add_parser("tail", help="follow a session: print its spans and log records as they arrive")
    _common(p)
    p.add_argument("id")
    p.set_defaults(func=cmd_sessions_tail)

    add_session_logs_command(sessions, _common)

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
    add_thread_logs_command(threads, _common)

    p = threads.add_parser("transcript", help="the conversation of a thread's sessions, in order")
    _common(p)
    p.add_argument("id")
    _message_paging(p)
    p.set_defaults(func=cmd_threads_transcript)

    users = sub.add_parser("users", help="show users").add_subparsers(dest="action", metavar="ACTION", required=True)
    p = users.add_parser("get", help="a user's sessions")
    _common(p)
    p.add_argument("id")
    _sorting(p)
    _paging(p)
    p.set_defaults(func=cmd_users_get)

    add_grpc_command(sub)


def run(args: argparse.Namespace) -> int:
    """Run a lookup command; errors become a message on stderr and an exit status."""
    try:
        args.token = client_token(args.token, args.token_file, QUERY_ENV)
        return args.func(args)
    except ServiceError as exc:
        print(f"otel-sessions: error: {exc}", file=sys.stderr, flush=True)
        return exc.exit_code
    except BrokenPipeError:
        return 0
