"""The lookup commands as subprocesses against the running service (tables, --json, errors)."""

from __future__ import annotations

import json
import subprocess
import sys

from otel_sessions.exporter.store.process_control import free_port
from tests.dataset import BY_ID, PLAN, sorted_ids
from tests.support import cli, cli_json


def ids(body) -> list[str]:
    return [s["id"] for s in body["data"]]


def test_sessions_list_json_and_filters(loaded):
    s = loaded.http_url
    body = cli_json("sessions", "list", server=s)
    assert ids(body) == sorted_ids(PLAN, "start", True, loaded.base) and body["total"] == len(PLAN)
    assert {x["id"]: x["span_count"] for x in body["data"]} == {p.id: p.span_count for p in PLAN}
    assert set(ids(cli_json("sessions", "list", "--user", "u-1", server=s))) == {"sess-0", "sess-1", "sess-2"}
    assert set(ids(cli_json("sessions", "list", "--thread", "t-1", server=s))) == {"sess-0", "sess-1"}
    assert set(ids(cli_json("sessions", "list", "--name", "BILLING", server=s))) == {"sess-0", "sess-2", "sess-4"}
    assert ids(cli_json("sessions", "list", "--status", "failed", server=s)) == ["sess-1"]
    assert set(ids(cli_json("sessions", "list", "--metadata", "plan=pro", "--metadata", "region=eu", server=s))) \
        == {"sess-0"}
    assert set(ids(cli_json("sessions", "list", "--service", "worker", "--model", "claude", server=s))) \
        == {"sess-3", "sess-5"}
    assert cli_json("sessions", "list", "--since", "1h", server=s)["total"] == 0  # the dataset started 2h ago
    assert cli_json("sessions", "list", "--since", "3h", server=s)["total"] == len(PLAN)
    page = cli_json("sessions", "list", "--sort", "cost", "--order", "asc", "--limit", "2", "--offset", "2", server=s)
    assert ids(page) == sorted_ids(PLAN, "cost", False, loaded.base)[2:4]


def test_sessions_list_table(loaded):
    out = cli("sessions", "list", "--sort", "tokens", server=loaded.http_url).stdout
    for p in PLAN:
        row = next(line for line in out.splitlines() if p.id in line)
        assert p.name in row and f" {p.span_count} " in row and p.status in row
        assert f" {(p.tokens_in + p.tokens_out) * p.turns} " in row and f"${p.cost * p.turns:.4f}" in row
    assert "1-6 of 6" in out


def test_sessions_get(loaded):
    body = cli_json("sessions", "get", "sess-1", server=loaded.http_url)
    assert body["id"] == "sess-1" and body["status"] == "failed" and len(body["traces"]) == 1
    table = cli("sessions", "get", "sess-1", server=loaded.http_url).stdout
    assert "sess-1" in table and "traces" in table and "turn 0" in table and "lookup_2" in table


def test_sessions_get_tree(loaded):
    body = cli_json("sessions", "get", "sess-0", "--tree", server=loaded.http_url)
    roots = body["tree"]
    assert [r["name"] for r in roots] == ["turn 0", "turn 1"]
    assert all(r["kind"] == "agent" for r in roots)
    children = roots[0]["children"]
    assert [(c["kind"], c["name"]) for c in children] == [("llm", "chat gpt-4o-2024-08-06"),
                                                          ("tool", "execute_tool lookup_0")]
    assert (children[0]["input_tokens"], children[0]["output_tokens"]) == (120, 30)
    assert children[0]["duration_ms"] == 1.0
    failed = cli_json("sessions", "get", "sess-1", "--tree", server=loaded.http_url)["tree"][0]
    assert failed["kind"] == "error" and failed["error"] == "agent failed"
    text = cli("sessions", "get", "sess-0", "--tree", server=loaded.http_url).stdout
    assert "LLM chat gpt-4o-2024-08-06" in text and "120→30 tok" in text and "tool execute_tool lookup_0" in text


def test_threads_and_users(loaded):
    thread = cli_json("threads", "get", "t-2", server=loaded.http_url)
    assert ids(thread) == ["sess-2", "sess-3", "sess-4"]
    out = cli("threads", "get", "t-2", server=loaded.http_url).stdout
    assert out.index("sess-2") < out.index("sess-3") < out.index("sess-4")
    user = cli_json("users", "get", "u-2", server=loaded.http_url)
    assert ids(user) == ["sess-4", "sess-3"]
    assert ids(cli_json("users", "get", "u-2", "--sort", "spans", "--order", "asc", server=loaded.http_url)) \
        == ["sess-4", "sess-3"]
    assert "sess-5" in cli("users", "get", "u-3", server=loaded.http_url).stdout


def test_lookup_errors_are_clear(loaded):
    missing = cli("sessions", "get", "nope", server=loaded.http_url, expect=1)
    assert "no session 'nope'" in missing.stderr and "404" in missing.stderr
    bad = cli("sessions", "list", "--limit", "501", server=loaded.http_url, expect=2)
    assert "limit" in bad.stderr and "500" in bad.stderr
    assert "thread" in cli("threads", "get", "nope", server=loaded.http_url, expect=1).stderr
    assert "--since" in cli("sessions", "list", "--since", "soon", server=loaded.http_url, expect=2).stderr


def test_unreachable_service_gives_a_clear_message_and_non_zero_exit():
    server = f"http://127.0.0.1:{free_port()}"
    for args in (("sessions", "list"), ("sessions", "get", "x"), ("threads", "get", "t"), ("users", "get", "u"),
                 ("sessions", "delete", "x"), ("sessions", "tail", "x")):
        result = cli(*args, server=server, expect=None)
        assert result.returncode == 1, args
        assert f"cannot reach the otel-sessions service at {server}" in result.stderr
        assert "Traceback" not in result.stderr
    demo = cli("demo", "--endpoint", server, expect=1)
    assert "cannot reach" in demo.stderr and "Traceback" not in demo.stderr
    grpc_call = cli("grpc", "ListSessions", "--address", f"127.0.0.1:{free_port()}", expect=1)
    assert "cannot reach the SessionService" in grpc_call.stderr


def test_grpc_command(loaded):
    body = json.loads(cli("grpc", "ListSessions", '{"limit": 2, "sort_by": "cost"}',
                          "--address", loaded.grpc_endpoint).stdout)
    assert [s["id"] for s in body["sessions"]] == sorted_ids(PLAN, "cost", True, loaded.base)[:2]
    assert body["total"] == str(len(PLAN))  # uint64 as a string, as the protobuf JSON mapping says
    thread = json.loads(cli("grpc", "GetThread", '{"thread_id": "t-1"}', "--address", loaded.grpc_endpoint).stdout)
    assert [s["id"] for s in thread["sessions"]] == ["sess-0", "sess-1"]
    spans = json.loads(cli("grpc", "GetSessionSpans", '{"session_id": "sess-5"}', "--address",
                           loaded.grpc_endpoint).stdout)
    assert sum(len(ss["spans"]) for rs in spans["resourceSpans"] for ss in rs["scopeSpans"]) == BY_ID["sess-5"].span_count
    missing = cli("grpc", "GetSession", '{"session_id": "nope"}', "--address", loaded.grpc_endpoint, expect=1)
    assert "NOT_FOUND" in missing.stderr
    bad = cli("grpc", "ListSessions", '{"sort_by": "colour"}', "--address", loaded.grpc_endpoint, expect=2)
    assert "INVALID_ARGUMENT" in bad.stderr and "sort_by" in bad.stderr


def test_help_lists_every_command():
    out = subprocess.run([sys.executable, "-m", "otel_sessions.exporter.cli", "--help"], capture_output=True,
                         text=True, check=True).stdout
    for command in ("serve", "sessions", "threads", "users", "demo", "grpc"):
        assert command in out
