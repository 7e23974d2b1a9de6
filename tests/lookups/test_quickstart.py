"""The quick start: serve (embedded Redis), demo, sessions list, sessions get --tree, as a user runs them."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys

import pytest

from tests.lookups.cli_support import LineReader, cli, cli_json


@pytest.fixture()
def served(tmp_path):
    """``otel-sessions serve`` with its embedded Redis, data under a temporary XDG_DATA_HOME, ports 0."""
    env = {**os.environ, "XDG_DATA_HOME": str(tmp_path)}
    for name in list(env):
        if name.startswith("OTEL_SESSIONS_"):
            del env[name]
    process = subprocess.Popen(
        [sys.executable, "-m", "otel_sessions.exporter.cli", "serve", "--grpc-listen", "127.0.0.1:0",
         "--http-listen", "127.0.0.1:0"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    try:
        reader = LineReader(process)
        reader.wait_for(lambda line: line.endswith("ready"))
        out = "\n".join(reader.lines)
        http = re.search(r"OTLP/HTTP on (http://127\.0\.0\.1:\d+)/v1/traces", out).group(1)
        grpc = re.search(r"OTLP/gRPC on (127\.0\.0\.1:\d+)", out).group(1)
        assert f"lookups on {http}/v1/sessions" in out and str(tmp_path / "otel-sessions" / "redis") in out
        yield http, grpc
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(30) == 0
    assert (tmp_path / "otel-sessions" / "redis").is_dir()


def test_quickstart(served):
    http, grpc = served
    demo = cli("demo", "--endpoint", http).stdout
    assert "Sent 3 sessions" in demo and "otel-sessions sessions list --thread thrd_demo_" in demo

    sessions = cli_json("sessions", "list", server=http)
    assert sessions["total"] == 3
    by_name = {s["name"]: s for s in sessions["data"]}
    assert set(by_name) == {"Order status", "Refund request", "Refund follow-up"}
    assert len({s["thread_id"] for s in sessions["data"]}) == 1 and {s["user_id"] for s in sessions["data"]} == {"u-123"}
    assert by_name["Order status"]["status"] == "completed" and by_name["Refund follow-up"]["status"] == "completed"
    refund = by_name["Refund request"]
    assert refund["error_count"] == 1 and refund["status"] == "active"  # the failed tool call was retried
    assert set(refund["tools"]) == {"lookup_invoice", "refund_payment"}
    assert {"router", "billing_agent"} <= set(refund["agents"])
    assert all(s["total_tokens"] > 0 and s["cost_usd"] > 0 and s["span_count"] > 5 for s in sessions["data"])

    table = cli("sessions", "list", server=http).stdout
    for s in sessions["data"]:
        row = next(line for line in table.splitlines() if s["id"] in line)
        assert f" {s['span_count']} " in row and f" {s['total_tokens']} " in row and f"${s['cost_usd']:.4f}" in row

    tree = cli("sessions", "get", refund["id"], "--tree", server=http).stdout
    assert "agent invoke_agent router" in tree and "agent invoke_agent billing_agent" in tree
    assert "error execute_tool refund_payment" in tree and "payment gateway timed out" in tree
    first = cli("sessions", "get", by_name["Order status"]["id"], "--tree", server=http).stdout
    assert "guardrail guardrail input_moderation" in first and "LLM chat gpt-4o-mini" in first

    thread = cli_json("threads", "get", refund["thread_id"], server=http)
    assert [s["name"] for s in thread["data"]] == ["Order status", "Refund request", "Refund follow-up"]
