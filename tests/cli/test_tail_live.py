"""CLI commands that change or follow the store: delete and tail (each on its own flushed Redis)."""

from __future__ import annotations

import os
import subprocess
import sys
import time

from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

from tests import dataset
from tests.support import LineReader, cli, cli_json, provider_with


def test_sessions_delete(service):
    dataset.emit(service.http_url, dataset.base_ns())
    assert cli("sessions", "delete", "sess-3", server=service.http_url).stdout.strip() == "deleted sess-3"
    listed = {s["id"] for s in cli_json("sessions", "list", server=service.http_url)["data"]}
    assert listed == {p.id for p in dataset.PLAN} - {"sess-3"}
    assert "sess-3" not in {s["id"] for s in cli_json("users", "get", "u-2", server=service.http_url)["data"]}
    assert "no session" in cli("sessions", "delete", "sess-3", server=service.http_url, expect=1).stderr


def test_sessions_tail_prints_spans_as_they_arrive(service):
    provider = provider_with(OTLPSpanExporter(endpoint=service.http_url + "/v1/traces"))
    tracer = provider.get_tracer("tail")
    ids = {"session.id": "sess-tail"}
    with tracer.start_as_current_span("first, before the tail", attributes=ids):
        pass
    process = subprocess.Popen([sys.executable, "-m", "otel_sessions.exporter.cli", "sessions", "tail", "sess-tail"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env={**os.environ, "OTEL_SESSIONS_SERVER": service.http_url})
    try:
        reader = LineReader(process)
        reader.wait_for(lambda line: line.startswith("following sess-tail"))
        with tracer.start_as_current_span("chat gpt-4o", attributes={
                **ids, "gen_ai.operation.name": "chat", "gen_ai.request.model": "gpt-4o",
                "gen_ai.usage.input_tokens": 7, "gen_ai.usage.output_tokens": 3}):
            pass
        with tracer.start_as_current_span("execute_tool search", attributes={**ids, "gen_ai.tool.name": "search"}):
            pass
        llm = reader.wait_for(lambda line: "chat gpt-4o" in line)
        assert "LLM" in llm and "7→3 tok" in llm
        tool = reader.wait_for(lambda line: "execute_tool search" in line)
        assert "tool" in tool
        assert not any("before the tail" in line for line in reader.lines)
    finally:
        process.terminate()
        process.wait(10)
        provider.shutdown()


def test_sessions_tail_ends_with_one_line_when_the_service_stops(redis_url):
    from tests.support import RunningService

    running = RunningService(redis_url).start()
    try:
        provider = provider_with(OTLPSpanExporter(endpoint=running.http_url + "/v1/traces"))
        provider.get_tracer("tail").start_span("first", attributes={"session.id": "sess-stop"}).end()
        provider.shutdown()
        process = subprocess.Popen([sys.executable, "-m", "otel_sessions.exporter.cli", "sessions", "tail",
                                    "sess-stop"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                   env={**os.environ, "OTEL_SESSIONS_SERVER": running.http_url})
        LineReader(process).wait_for(lambda line: line.startswith("following sess-stop"))
    finally:
        running.stop()
    try:
        assert process.wait(30) == 1
        err = process.stderr.read()
        assert err.count("\n") == 1 and "Traceback" not in err, err
        assert err.startswith(f"otel-sessions: error: the service at {running.http_url} ended the tail of sess-stop")
    finally:
        process.kill()


def test_sessions_logs_follow_ends_with_one_line_when_the_service_stops(redis_url):
    from tests.support import RunningService

    running = RunningService(redis_url).start()
    try:
        provider = provider_with(OTLPSpanExporter(endpoint=running.http_url + "/v1/traces"))
        provider.get_tracer("tail").start_span("first", attributes={"session.id": "sess-logs-stop"}).end()
        provider.shutdown()
        process = subprocess.Popen([sys.executable, "-m", "otel_sessions.exporter.cli", "sessions", "logs",
                                    "sess-logs-stop", "--follow"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                   text=True, env={**os.environ, "OTEL_SESSIONS_SERVER": running.http_url})
        # subscribed: the service holds the stream open (its keep-alive comes every 5 s)
        deadline = time.monotonic() + 20
        while running.call(_tail_subscribers(running)) == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        running.stop()
    try:
        assert process.wait(30) == 1
        err = process.stderr.read()
        assert err.count("\n") == 1 and "Traceback" not in err, err
        assert err.startswith(f"otel-sessions: error: the service at {running.http_url} ended the tail of "
                              "sess-logs-stop")
    finally:
        process.kill()


async def _tail_subscribers(running) -> int:
    """Clients subscribed to the session's tail channels (Redis PUBSUB NUMSUB)."""
    keys = running.store.keys
    client = running.store.gateway.client
    replies = await client.pubsub_numsub(keys.tail_channel("sess-logs-stop"), keys.log_tail_channel("sess-logs-stop"))
    return sum(count for _channel, count in replies)
