"""``sessions logs ID`` and ``threads logs ID``: a session's (a thread's) log records, like ``kubectl logs``.

One line per record, in time order: local time (milliseconds), severity (coloured), service,
the first 8 hex digits of the span id, the message. ``--min-severity`` keeps records from that
severity up (``WARN``, ``error``, or 1..24); ``--json`` prints the service's JSON (with
``--follow``, one record per line). ``sessions logs --follow`` goes on printing the records
that arrive (the session's live tail, ``event: logs``) until Ctrl-C: it subscribes first and
reads the stored records then, so none is missed, and none is printed twice. Like ``sessions
tail``, the service going away, or no line for 30 s (it sends a keep-alive every 5 s), is one
line on stderr and exit status 1.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import urllib.parse
from typing import Any

from otel_sessions.exporter.cli import render
from otel_sessions.exporter.cli.client import TAIL_SILENCE_S, Client, ServiceError, tail_lines

__all__ = ["add_session_logs_command", "add_thread_logs_command", "log_line", "otlp_records"]

_PAGE = 10_000
#: (lowest severity_number, label, style)
_LEVELS = ((21, "FATAL", "bold red"), (17, "ERROR", "red"), (13, "WARN", "yellow"), (9, "INFO", "green"),
           (5, "DEBUG", "dim"), (1, "TRACE", "dim"))


def _level(record: dict) -> tuple[str, str]:
    number = record.get("severity_number") or 0
    for low, label, style in _LEVELS:
        if number >= low:
            return label, style
    text = (record.get("severity_text") or "").upper()
    for _low, label, style in _LEVELS:
        if text.startswith(label) or (label == "WARN" and text.startswith("WARNING")):
            return label, style
    return (text[:5] or "-"), ""


def _message(record: dict) -> str:
    body = record.get("body")
    if body is None:
        return record.get("event_name") or ""
    return body if isinstance(body, str) else json.dumps(body, separators=(",", ":"), ensure_ascii=False)


def log_line(record: dict, with_session: bool = False) -> str:
    """One record (the REST JSON shape) as a line (rich markup)."""
    from rich.markup import escape

    nanos = int(record.get("time_unix_nano") or 0)
    stamp = time.strftime("%H:%M:%S", time.localtime(nanos / 1e9)) + f".{nanos // 1_000_000 % 1000:03d}"
    label, style = _level(record)
    parts = [f"[dim]{stamp}[/]", f"[{style}]{label:<5}[/]" if style else f"{label:<5}"]
    if with_session and record.get("session_id"):
        parts.append(f"[cyan]{escape(record['session_id'])}[/]")
    parts.append(escape(record.get("service") or "-"))
    parts.append(f"[dim]{(record.get('span_id') or '-')[:8]:<8}[/]")
    parts.append(escape(_message(record)))
    return " ".join(parts)


def _plain(value: dict) -> Any:
    """An OTLP/JSON AnyValue as a plain value."""
    for key in ("stringValue", "boolValue", "doubleValue", "bytesValue"):
        if key in value:
            return value[key]
    if "intValue" in value:
        return int(value["intValue"])
    if "arrayValue" in value:
        return [_plain(v) for v in value["arrayValue"].get("values", [])]
    if "kvlistValue" in value:
        return {kv["key"]: _plain(kv.get("value", {})) for kv in value["kvlistValue"].get("values", [])}
    return None


def otlp_records(data: dict) -> list[dict]:
    """The records of an OTLP/JSON ``LogsData`` in the REST JSON shape (the fields lines use)."""
    out = []
    for rl in data.get("resourceLogs", []):
        resource = {kv["key"]: _plain(kv.get("value", {})) for kv in rl.get("resource", {}).get("attributes", [])}
        for sl in rl.get("scopeLogs", []):
            for r in sl.get("logRecords", []):
                body = r.get("body")
                out.append({
                    "time_unix_nano": int(r.get("timeUnixNano") or r.get("observedTimeUnixNano") or 0),
                    "severity_number": int(r.get("severityNumber") or 0),
                    "severity_text": r.get("severityText", ""),
                    "body": _plain(body) if body else None,
                    "event_name": r.get("eventName") or None,
                    "service": resource.get("service.name"),
                    "trace_id": r.get("traceId") or None,
                    "span_id": r.get("spanId") or None,
                    "attributes": {kv["key"]: _plain(kv.get("value", {})) for kv in r.get("attributes", [])},
                    "resource": resource,
                })
    return sorted(out, key=lambda rec: rec["time_unix_nano"])


def _key(record: dict) -> tuple:
    return record["time_unix_nano"], record.get("span_id"), _message(record)


_NAMES = {"TRACE": 1, "DEBUG": 5, "INFO": 9, "WARN": 13, "WARNING": 13, "ERROR": 17, "FATAL": 21, "CRITICAL": 21}


def _severity_floor(text: str | None) -> int:
    """``--min-severity`` as the lowest severity_number kept (0: every record)."""
    if not text:
        return 0
    text = text.strip().upper()
    if text.isdigit() and 1 <= int(text) <= 24:
        return int(text)
    if text in _NAMES:
        return _NAMES[text]
    raise ServiceError(f"--min-severity: {text[:32]!r} is not TRACE, DEBUG, INFO, WARN, ERROR, FATAL or 1..24", 2)


def _print_page(console, args: argparse.Namespace, records: list[dict], with_session: bool) -> None:
    for record in records:
        if args.json:
            print(json.dumps(record), flush=True)
        else:
            console.print(log_line(record, with_session), highlight=False, soft_wrap=True)


def _fetch(client: Client, path: str, args: argparse.Namespace) -> dict:
    return client.get(path, min_severity=args.min_severity, limit=args.limit or _PAGE)


def cmd_session_logs(args: argparse.Namespace) -> int:
    client = Client(args.server, args.token)
    base = "/v1/sessions/" + urllib.parse.quote(args.id, safe="")
    console = render.console()
    if not args.follow:
        body = _fetch(client, base + "/logs", args)
        if args.json:
            render.print_json(body)
        else:
            _print_page(console, args, body["data"], False)
        return 0
    floor = _severity_floor(args.min_severity)  # a bad value fails here, before anything is opened
    response = client.open("GET", base + "/tail", timeout=TAIL_SILENCE_S)
    try:
        printed: set[tuple] = set()
        event = None
        for raw in tail_lines(response, client.server, args.id, TAIL_SILENCE_S):
            line = raw.decode().rstrip("\n")
            if line.startswith(": tailing"):  # subscribed: what is stored now, then what arrives
                records = _fetch(client, base + "/logs", args)["data"]
                _print_page(console, args, records, False)
                printed.update(_key(r) for r in records)
            elif line.startswith("event: "):
                event = line[len("event: "):]
            elif line.startswith("data: "):
                if event == "logs":
                    fresh = [r for r in otlp_records(json.loads(line[len("data: "):]))
                             if _key(r) not in printed and _level_number(r) >= floor]
                    printed.update(_key(r) for r in fresh)
                    _print_page(console, args, fresh, False)
                    sys.stdout.flush()
            elif not line:
                event = None
    except KeyboardInterrupt:
        return 0
    finally:
        response.close()


def _level_number(record: dict) -> int:
    number = record.get("severity_number") or 0
    if 0 < number <= 24:
        return number
    return _NAMES.get((record.get("severity_text") or "").upper(), 0)


def cmd_thread_logs(args: argparse.Namespace) -> int:
    client = Client(args.server, args.token)
    body = _fetch(client, "/v1/threads/" + urllib.parse.quote(args.id, safe="") + "/logs", args)
    if args.json:
        render.print_json(body)
        return 0
    _print_page(render.console(), args, body["data"], True)
    return 0


def _arguments(p: argparse.ArgumentParser, common) -> None:
    common(p)
    p.add_argument("id")
    p.add_argument("--min-severity", metavar="LEVEL", default=None,
                   help="records from this severity up: TRACE, DEBUG, INFO, WARN, ERROR, FATAL or 1..24")
    p.add_argument("--limit", type=int, default=None, help=f"records at most (default and maximum {_PAGE})")


def add_session_logs_command(sessions: argparse._SubParsersAction, common) -> None:
    """``sessions logs`` (``common`` adds --server, --token and --json)."""
    p = sessions.add_parser("logs", help="a session's log records in time order; --follow for new ones")
    _arguments(p, common)
    p.add_argument("-f", "--follow", action="store_true", help="go on printing records as they arrive (Ctrl-C stops)")
    p.set_defaults(func=cmd_session_logs)


def add_thread_logs_command(threads: argparse._SubParsersAction, common) -> None:
    """``threads logs``: the records of every session of the thread, in time order."""
    p = threads.add_parser("logs", help="the log records of a thread's sessions in time order")
    _arguments(p, common)
    p.set_defaults(func=cmd_thread_logs)
