"""The lookup commands in-process against a fake service: requests made, output, errors and exit codes."""

from __future__ import annotations

import json

import pytest

from otel_sessions.exporter.cli.main import main

SESSION = {"id": "s-1", "name": "refund", "status": "completed", "user_id": "u-1", "thread_id": "t-1",
           "start_time": "2024-05-01T12:34:56Z", "duration_ms": 1500, "trace_count": 1, "span_count": 3,
           "error_count": 0, "total_tokens": 150, "cost_usd": 0.0123,
           "traces": [{"trace_id": "ab" * 16, "root_name": "router", "start_time": "2024-05-01T12:34:56Z",
                       "duration_ms": 1500, "span_count": 3, "error_count": 0, "total_tokens": 150,
                       "cost_usd": 0.0123}]}


def kv(key: str, value: str) -> dict:
    return {"key": key, "value": {"stringValue": value}}


SPANS = {"resourceSpans": [{"scopeSpans": [{"spans": [
    {"traceId": "ab" * 16, "spanId": "r", "name": "router", "startTimeUnixNano": "1714566896000000000",
     "endTimeUnixNano": "1714566897500000000", "attributes": [kv("gen_ai.agent.name", "router")]},
    {"traceId": "ab" * 16, "spanId": "w", "parentSpanId": "r", "name": "get_weather",
     "startTimeUnixNano": "1714566896100000000", "endTimeUnixNano": "1714566896142000000",
     "attributes": [kv("gen_ai.operation.name", "execute_tool")]},
]}]}]}


def table_rows(out: str, title: str) -> list[list[str]]:
    """The body rows of the table titled ``title`` in ``out``, as stripped cells."""
    lines = [line.rstrip() for line in out.splitlines()]
    top = lines.index(title)
    end = next(i for i in range(top, len(lines)) if lines[i].startswith("└"))
    return [[c.strip() for c in line.split("│")[1:-1]] for line in lines[top + 4:end]]


@pytest.fixture(autouse=True)
def no_env(monkeypatch):
    for name in ("OTEL_SESSIONS_SERVER", "OTEL_SESSIONS_QUERY_TOKEN", "OTEL_SESSIONS_GRPC"):
        monkeypatch.delenv(name, raising=False)


def test_lookup_error_is_one_line_on_stderr_with_the_exit_code(fake, capsys):
    fake.routes[("GET", "/v1/sessions/a%2Fb%20c")] = (404, {"error": "no session 'a/b c'"})
    assert main(["sessions", "get", "a/b c", "--server", fake.url]) == 1
    out, err = capsys.readouterr()
    assert (out, err) == ("", "otel-sessions: error: no session 'a/b c' (HTTP 404)\n")
    fake.routes[("GET", "/v1/sessions")] = (400, {"error": "limit: at most 500"})
    assert main(["sessions", "list", "--limit", "501", "--server", fake.url]) == 2
    assert capsys.readouterr().err == "otel-sessions: error: limit: at most 500 (HTTP 400)\n"


def test_unreachable_service(refused_url, capsys):
    for argv in (["sessions", "list"], ["sessions", "get", "x"], ["sessions", "tail", "x"],
                 ["sessions", "delete", "x"], ["threads", "get", "t"], ["users", "get", "u"]):
        assert main([*argv, "--server", refused_url]) == 1, argv
        err = capsys.readouterr().err
        assert err.startswith(f"otel-sessions: error: cannot reach the otel-sessions service at {refused_url}: ")
        assert err.count("\n") == 1


def test_bad_arguments_are_exit_2_before_any_request(fake, capsys):
    assert main(["sessions", "list", "--metadata", "tier", "--server", fake.url]) == 2
    assert capsys.readouterr().err == "otel-sessions: error: --metadata: use KEY=VALUE (got 'tier')\n"
    assert main(["sessions", "list", "--metadata", "=gold", "--server", fake.url]) == 2
    assert main(["sessions", "list", "--since", "soon", "--server", fake.url]) == 2
    assert capsys.readouterr().err.startswith("otel-sessions: error: --metadata: use KEY=VALUE (got '=gold')\n"
                                              "otel-sessions: error: --since: ")
    assert fake.requests == []


def test_sessions_list_sends_filters_and_prints_json(fake, capsys, monkeypatch):
    monkeypatch.setenv("OTEL_SESSIONS_QUERY_TOKEN", "secret")
    body = {"data": [SESSION], "total": 1, "offset": 0}
    fake.routes[("GET", "/v1/sessions")] = (200, body)
    assert main(["sessions", "list", "--json", "--user", "u-1", "--status", "completed,failed", "--sort", "cost",
                 "--order", "asc", "--limit", "5", "--metadata", "tier=gold", "--metadata", "a=b=c",
                 "--server", fake.url + "/"]) == 0
    assert json.loads(capsys.readouterr().out) == body
    (request,) = fake.requests
    assert request["query"] == [("user_id", "u-1"), ("status", "completed,failed"), ("sort_by", "cost"),
                                ("sort_order", "asc"), ("limit", "5"), ("metadata.tier", "gold"),
                                ("metadata.a", "b=c")]
    assert request["authorization"] == "Bearer secret"


def test_sessions_list_since_is_a_start_time_in_milliseconds(fake, capsys):
    import time

    fake.routes[("GET", "/v1/sessions")] = (200, {"data": [], "total": 0, "offset": 0})
    before = time.time()
    assert main(["sessions", "list", "--since", "1h", "--server", fake.url]) == 0
    start_time = int(dict(fake.requests[0]["query"])["start_time"])
    assert (before - 3600) * 1000 - 1 <= start_time <= (time.time() - 3600) * 1000
    assert capsys.readouterr().out.splitlines()[-1].rstrip() == "0-0 of 0"


FIGURES = {"message_count": 4, "user_messages": 2, "assistant_messages": 2, "first_user_message": "Refund please",
           "last_assistant_message": "Refunded [42] USD", "model_calls": 3, "response_latency_ms": 1250.0,
           "time_to_first_token_ms": 300.0, "tool_calls": 2, "tool_errors": 1, "tool_latency_ms": 400.0}


def test_sessions_get_table(fake, capsys):
    fake.routes[("GET", "/v1/sessions/s-1")] = (200, {**SESSION, "models": ["gpt-4o"], "conversation": FIGURES})
    assert main(["sessions", "get", "s-1", "--server", fake.url]) == 0
    out = capsys.readouterr().out
    assert "models: gpt-4o" in out
    assert "messages: 4 (2 user, 2 assistant)" in out and "first user message: Refund please" in out
    assert "last assistant message: Refunded [42] USD" in out  # not read as markup
    assert "model calls: 3, mean 1.25s, first token 300ms" in out
    assert "tool calls: 2 (1 failed), mean 400ms" in out
    assert table_rows(out, "session") == [
        ["s-1", "refund", "completed", "u-1", "t-1", "2024-05-01 12:34:56", "4", "1.50s", "1", "3", "0", "150",
         "$0.0123"]]
    assert table_rows(out, "traces") == [
        ["ab" * 16, "router", "2024-05-01 12:34:56", "1.50s", "3", "0", "150", "$0.0123"]]


def test_sessions_get_tree(fake, capsys):
    fake.routes[("GET", "/v1/sessions/s-1")] = (200, SESSION)
    fake.routes[("GET", "/v1/sessions/s-1/spans")] = (200, SPANS)
    assert main(["sessions", "get", "s-1", "--tree", "--json", "--server", fake.url]) == 0
    body = json.loads(capsys.readouterr().out)
    assert fake.requests[1]["query"] == [("format", "otlp-json")]
    assert [(n["name"], n["kind"], [c["name"] for c in n["children"]]) for n in body["tree"]] == [
        ("router", "agent", ["get_weather"])]
    assert main(["sessions", "get", "s-1", "--tree", "--server", fake.url]) == 0
    assert capsys.readouterr().out.splitlines()[-3:] == [
        "refund s-1", "└──     agent router  1.50s", "    └──      tool get_weather  42ms"]


def test_sessions_tail(fake, capsys, utc):
    stream = ": tailing s-1\n\n" + "".join(f"data: {json.dumps(SPANS)}\n\n: keep-alive\n\n" for _ in range(2))
    fake.routes[("GET", "/v1/sessions/s-1/tail")] = (200, stream)
    ended = f"otel-sessions: error: the service at {fake.url} ended the tail of s-1: it stopped or restarted\n"
    assert main(["sessions", "tail", "s-1", "--server", fake.url]) == 1  # the stream ended: the service went away
    out, err = capsys.readouterr()
    assert out.splitlines() == [
        "following s-1; new spans appear below (Ctrl-C to stop)",
        *["12:34:56 abababab     agent router  1.50s", "12:34:56 abababab      tool get_weather  42ms"] * 2]
    assert err == ended
    assert main(["sessions", "tail", "s-1", "--json", "--server", fake.url]) == 1
    out, err = capsys.readouterr()
    assert [json.loads(line) for line in out.splitlines()] == [SPANS, SPANS] and err == ended


def test_sessions_tail_silence_is_one_line_and_exit_1(fake, capsys, monkeypatch):
    from otel_sessions.exporter.cli import commands
    from tests.cli.fake_service import Stalled

    monkeypatch.setattr(commands, "TAIL_SILENCE_S", 0.5)
    fake.routes[("GET", "/v1/sessions/s-1/tail")] = (200, Stalled(": tailing s-1\n\n: keep-alive\n\n"))
    assert main(["sessions", "tail", "s-1", "--server", fake.url]) == 1
    out, err = capsys.readouterr()
    assert out == "following s-1; new spans appear below (Ctrl-C to stop)\n"
    assert err == (f"otel-sessions: error: nothing from the service at {fake.url} for 0.5 s (not even a "
                   "keep-alive): the tail of s-1 is lost\n")


def test_sessions_delete(fake, capsys):
    fake.routes[("DELETE", "/v1/sessions/s-1")] = (204, None)
    assert main(["sessions", "delete", "s-1", "--server", fake.url]) == 0
    assert capsys.readouterr().out == "deleted s-1\n"


def test_threads_and_users(fake, capsys):
    second = {**SESSION, "id": "s-2", "span_count": 4, "total_tokens": 50, "cost_usd": 0.0002}
    fake.routes[("GET", "/v1/threads/t-1")] = (200, {"data": [SESSION, second], "total": 2, "offset": 0})
    fake.routes[("GET", "/v1/users/u-1/sessions")] = (200, {"data": [second], "total": 3, "offset": 1})
    assert main(["threads", "get", "t-1", "--server", fake.url]) == 0
    out = capsys.readouterr().out
    assert [row[0] for row in table_rows(out, "thread t-1")] == ["s-1", "s-2"]
    assert "t-1" not in out.splitlines()[4]  # no thread column
    assert out.splitlines()[-1].rstrip() == "1-2 of 2 · 7 spans · 200 tokens · $0.0125"
    assert main(["users", "get", "u-1", "--sort", "tokens", "--offset", "1", "--server", fake.url]) == 0
    out = capsys.readouterr().out
    assert [row[0] for row in table_rows(out, "user u-1")] == ["s-2"]
    assert out.splitlines()[-1].rstrip() == "2-2 of 3"
    assert fake.requests[-1]["query"] == [("sort_by", "tokens"), ("offset", "1")]


def test_grpc_argument_errors(capsys):
    assert main(["grpc", "Nope"]) == 2
    assert capsys.readouterr().err == ("otel-sessions: error: no method 'Nope'; SessionService has ListSessions, "
                                       "GetSession, GetSessionSpans, GetSessionLogs, TailSession, GetThread, DeleteSession\n")
    assert main(["grpc", "ListSessions", "{not json"]) == 2
    assert capsys.readouterr().err.startswith("otel-sessions: error: request: ")


def test_grpc_unreachable(refused_url, capsys):
    address = refused_url.removeprefix("http://")
    assert main(["grpc", "GetSession", '{"session_id": "x"}', "--address", address]) == 1
    assert capsys.readouterr().err.startswith(f"otel-sessions: error: cannot reach the SessionService at {address}: ")


def test_tables_explain_the_star_of_estimated_costs(fake, capsys):
    from otel_sessions.exporter.cli.render import ESTIMATED_NOTE

    estimated = {**SESSION, "cost_estimated": True, "cost_usd": 0.000012}
    fake.routes[("GET", "/v1/sessions")] = (200, {"data": [estimated], "total": 1, "limit": 50, "offset": 0})
    fake.routes[("GET", "/v1/sessions/s-1")] = (200, estimated)
    fake.routes[("GET", "/v1/users/u-1/sessions")] = (200, {"data": [SESSION], "total": 1, "limit": 50, "offset": 0})
    assert main(["sessions", "list", "--server", fake.url]) == 0
    out = capsys.readouterr().out
    assert "$0.000012*" in out and out.rstrip().endswith(ESTIMATED_NOTE)
    assert main(["sessions", "get", "s-1", "--server", fake.url]) == 0
    assert ESTIMATED_NOTE in capsys.readouterr().out
    assert main(["users", "get", "u-1", "--server", fake.url]) == 0
    assert ESTIMATED_NOTE not in capsys.readouterr().out  # no estimated cost: no legend
