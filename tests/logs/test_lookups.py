"""Reading session logs: an app with the span and log processors, the SDK's LoggingHandler and
the stock OTLP log exporters logs inside sessions, across threads and asyncio tasks; the REST
routes, the SessionService and the CLI show exactly those records, in time order, with their
span ids; filters, paging, formats and errors."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import threading
import urllib.request

import grpc
import pytest
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcSpanExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpSpanExporter
from opentelemetry.proto.logs.v1.logs_pb2 import LogsData
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

from otel_sessions.processor import SessionSpanProcessor, session
from otel_sessions.v1 import session_service_pb2 as pb
from otel_sessions.v1 import session_service_pb2_grpc as pb_grpc
from tests.logs.helpers import (
    grpc_export,
    grpc_log_exporter,
    http_log_exporter,
    log_provider,
    record,
    request,
    stdlib_logger,
)
from tests.support import LineReader, cli

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


class App:
    """The app: spans and log records of sessions, exported by the stock OTLP exporters."""

    def __init__(self, service, transport: str) -> None:
        grpc_side = transport == "grpc"
        self.tracer_provider = TracerProvider(resource=Resource.create({"service.name": "shop"}))
        self.tracer_provider.add_span_processor(SessionSpanProcessor())
        span_exporter = (GrpcSpanExporter(endpoint=service.grpc_endpoint, insecure=True) if grpc_side
                         else HttpSpanExporter(endpoint=service.http_url + "/v1/traces"))
        self.tracer_provider.add_span_processor(SimpleSpanProcessor(span_exporter))
        self.tracer = self.tracer_provider.get_tracer("shop")
        self.log_provider = log_provider(grpc_log_exporter(service) if grpc_side else http_log_exporter(service),
                                         service_name="shop")
        self.logger = stdlib_logger(self.log_provider, "shop")
        self.expected: dict[str, list[tuple[str, str, str]]] = {}  # session -> [(level, message, span id hex)]
        self._lock = threading.Lock()

    def _log(self, session_id: str, level: str, message: str) -> None:
        from opentelemetry import trace

        span_id = format(trace.get_current_span().get_span_context().span_id, "016x")
        getattr(self.logger, {"WARN": "warning"}.get(level, level.lower()))(message)
        with self._lock:
            self.expected.setdefault(session_id, []).append((level, message, span_id))

    def run(self) -> None:
        def in_thread(i: int) -> None:
            sid = f"sess-app-thread-{i}"
            with session(sid, thread_id="thrd-app", user_id="u-app"):
                with self.tracer.start_as_current_span(f"order {i}"):
                    self._log(sid, "INFO", f"thread {i}: order received")
                    with self.tracer.start_as_current_span("charge card"):
                        self._log(sid, "WARN", f"thread {i}: card needs 3-D Secure")
                    self._log(sid, "ERROR", f"thread {i}: payment declined")

        threads = [threading.Thread(target=in_thread, args=(i,)) for i in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()

        async def task(i: int) -> None:
            sid = f"sess-app-task-{i}"
            with session(sid, thread_id="thrd-app"):
                with self.tracer.start_as_current_span(f"chat turn {i}"):
                    for step in range(3):
                        self._log(sid, "INFO", f"task {i}: step {step}")
                        await asyncio.sleep(0.001)

        async def main() -> None:
            await asyncio.gather(*(task(i) for i in range(3)))

        asyncio.run(main())
        self.log_provider.shutdown()
        self.tracer_provider.shutdown()


def _get(service, path: str, expect: int = 200):
    try:
        with urllib.request.urlopen(service.http_url + path, timeout=10) as response:
            assert response.status == expect
            body = response.read()
            return json.loads(body) if response.headers["Content-Type"].startswith("application/json") else body
    except urllib.error.HTTPError as exc:
        assert exc.code == expect, (exc.code, exc.read())
        return json.loads(exc.read() or b"{}")


@pytest.fixture(scope="module", params=["grpc", "http"])
def app(request, tmp_path_factory):
    """One service and one app run per transport, shared by the read-only tests below."""
    from otel_sessions.exporter.store.embedded_redis import EmbeddedRedis
    from tests.support import RunningService

    server = EmbeddedRedis(tmp_path_factory.mktemp("logs-redis"), port=None, persistent=False).start()
    try:
        with RunningService(server.url) as service:
            run = App(service, request.param)
            run.run()
            yield service, run
    finally:
        server.stop()


def test_rest_shows_exactly_the_records_in_order_with_their_span_ids(app):
    service, run = app
    for session_id, expected in run.expected.items():
        body = _get(service, f"/v1/sessions/{session_id}/logs")
        assert body["id"] == session_id and body["total"] == len(expected)
        got = [(r["severity_text"], r["body"], r["span_id"]) for r in body["data"]]
        assert got == expected
        times = [r["time_unix_nano"] for r in body["data"]]
        assert times == sorted(times)
        first = body["data"][0]
        assert first["service"] == "shop" and first["resource"]["service.name"] == "shop"
        assert first["attributes"]["session.id"] == session_id
        assert first["trace_id"] and first["time"].endswith("Z") and first["observed_time"]
        summary = _get(service, f"/v1/sessions/{session_id}")
        assert summary["log_count"] == len(expected)
        assert summary["span_count"] >= 1  # the spans landed in the same session
    s = _get(service, "/v1/sessions/sess-app-thread-0")
    assert (s["error_log_count"], s["first_error_log_message"]) == (1, "thread 0: payment declined")


def test_filters_paging_and_formats(app):
    service, run = app
    sid = "sess-app-thread-1"
    base = f"/v1/sessions/{sid}/logs"
    assert [r["body"] for r in _get(service, base + "?min_severity=WARN")["data"]] == [
        "thread 1: card needs 3-D Secure", "thread 1: payment declined"]
    assert [r["body"] for r in _get(service, base + "?min_severity=17")["data"]] == ["thread 1: payment declined"]
    assert _get(service, base + "?contains=3-d%20SECURE")["total"] == 1
    span = run.expected[sid][1][2]
    assert [r["body"] for r in _get(service, f"{base}?span_id={span}")["data"]] == ["thread 1: card needs 3-D Secure"]
    all_records = _get(service, base)["data"]
    trace = all_records[0]["trace_id"]
    assert _get(service, f"{base}?trace_id={trace}")["total"] == 3
    assert _get(service, f"{base}?trace_id={'0' * 32}")["total"] == 0
    middle = all_records[1]["time_unix_nano"]
    ms = middle // 1_000_000
    body = _get(service, f"{base}?start_time={ms}&end_time={ms + 1}")
    assert [r["body"] for r in body["data"]] == [all_records[1]["body"]]
    page = _get(service, f"{base}?limit=1&offset=1")
    assert (page["total"], page["limit"], page["offset"], [r["body"] for r in page["data"]]) == (
        3, 1, 1, [all_records[1]["body"]])
    raw = urllib.request.urlopen(service.http_url + base + "?format=otlp-json&min_severity=warn").read()
    data = json.loads(raw)
    records = [r for rl in data["resourceLogs"] for sl in rl["scopeLogs"] for r in sl["logRecords"]]
    assert [r["body"]["stringValue"] for r in records] == ["thread 1: card needs 3-D Secure",
                                                           "thread 1: payment declined"]
    assert records[0]["spanId"] == span  # hex ids in OTLP/JSON
    proto = LogsData.FromString(urllib.request.urlopen(service.http_url + base + "?format=otlp-proto").read())
    assert [r.body.string_value for rl in proto.resource_logs for sl in rl.scope_logs for r in sl.log_records] == [
        r["body"] for r in all_records]


def test_thread_logs_merge_the_sessions_in_time_order(app):
    service, run = app
    body = _get(service, "/v1/threads/thrd-app/logs")
    assert body["total"] == sum(len(v) for v in run.expected.values())
    times = [r["time_unix_nano"] for r in body["data"]]
    assert times == sorted(times)
    assert {r["session_id"] for r in body["data"]} == set(run.expected)
    errors = _get(service, "/v1/threads/thrd-app/logs?min_severity=ERROR")
    assert sorted(r["body"] for r in errors["data"]) == [f"thread {i}: payment declined" for i in range(3)]


def test_bad_parameters_and_unknown_ids(app):
    service, _run = app
    base = "/v1/sessions/sess-app-thread-0/logs"
    for query, parameter in (("min_severity=LOUD", "min_severity"), ("min_severity=25", "min_severity"),
                             ("trace_id=xyz", "trace_id"), ("span_id=" + "0" * 15, "span_id"),
                             ("limit=10001", "limit"), ("offset=-1", "offset"), ("format=csv", "format"),
                             ("start_time=soon", "start_time"), ("start_time=2000&end_time=1000", "start_time"),
                             ("bogus=1", "bogus")):
        assert _get(service, f"{base}?{query}", expect=400)["parameter"] == parameter, query
    assert "no session" in _get(service, "/v1/sessions/nobody/logs", expect=404)["error"]
    assert "no thread" in _get(service, "/v1/threads/nobody/logs", expect=404)["error"]


def test_get_session_logs_over_grpc(app):
    service, run = app
    sid = "sess-app-task-2"
    with grpc.insecure_channel(service.grpc_endpoint) as channel:
        stub = pb_grpc.SessionServiceStub(channel)
        data = stub.GetSessionLogs(pb.GetSessionLogsRequest(session_id=sid))
        records = [r for rl in data.resource_logs for sl in rl.scope_logs for r in sl.log_records]
        assert [(r.body.string_value, r.span_id.hex()) for r in records] == [
            (message, span) for _level, message, span in run.expected[sid]]
        page = stub.GetSessionLogs(pb.GetSessionLogsRequest(session_id=sid, limit=1, offset=2, contains="STEP"))
        assert [r.body.string_value for rl in page.resource_logs for sl in rl.scope_logs for r in sl.log_records] == [
            "task 2: step 2"]
        assert stub.GetSession(pb.GetSessionRequest(session_id=sid)).log_count == 3
        for bad, field in ((pb.GetSessionLogsRequest(session_id=sid, min_severity="LOUD"), "min_severity"),
                           (pb.GetSessionLogsRequest(session_id=sid, trace_id="zz"), "trace_id"),
                           (pb.GetSessionLogsRequest(), "session_id")):
            with pytest.raises(grpc.RpcError) as failure:
                stub.GetSessionLogs(bad)
            assert failure.value.code() == grpc.StatusCode.INVALID_ARGUMENT and field in failure.value.details()
        with pytest.raises(grpc.RpcError) as failure:
            stub.GetSessionLogs(pb.GetSessionLogsRequest(session_id="nobody"))
        assert failure.value.code() == grpc.StatusCode.NOT_FOUND


def test_cli_sessions_logs_and_threads_logs(app):
    service, run = app
    sid = "sess-app-thread-2"
    out = cli("sessions", "logs", sid, server=service.http_url).stdout.splitlines()
    assert len(out) == 3
    for line, (level, message, span) in zip(out, run.expected[sid]):
        stamp, severity, service_name, short_span, text = line.split(maxsplit=4)
        assert len(stamp) == 12 and stamp[2] == ":" and stamp[8] == "."  # local HH:MM:SS.mmm
        assert severity == level
        assert (service_name, short_span, text) == ("shop", span[:8], message)
    out = cli("sessions", "logs", sid, "--min-severity", "error", server=service.http_url).stdout.splitlines()
    assert [line.split(maxsplit=4)[4] for line in out] == ["thread 2: payment declined"]
    body = json.loads(cli("sessions", "logs", sid, "--json", server=service.http_url).stdout)
    assert [r["body"] for r in body["data"]] == [m for _l, m, _s in run.expected[sid]]
    out = cli("threads", "logs", "thrd-app", "--min-severity", "ERROR", server=service.http_url).stdout.splitlines()
    assert sorted(line.split(maxsplit=5)[2] for line in out) == [f"sess-app-thread-{i}" for i in range(3)]
    result = cli("sessions", "logs", sid, "--min-severity", "LOUD", server=service.http_url, expect=2)
    assert "min_severity" in result.stderr
    assert "no session" in cli("sessions", "logs", "nobody", server=service.http_url, expect=1).stderr


def test_cli_follow_prints_stored_then_arriving_records_once(service):
    grpc_export(service, request([record("stored before", **{"session.id": "sess-follow"})]).SerializeToString())
    process = subprocess.Popen([sys.executable, "-m", "otel_sessions.exporter.cli", "sessions", "logs", "sess-follow",
                                "--follow", "--min-severity", "INFO"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env={**os.environ, "OTEL_SESSIONS_SERVER": service.http_url})
    try:
        reader = LineReader(process)
        reader.wait_for(lambda line: line.endswith("stored before"))
        grpc_export(service, request([
            record("too quiet", severity=5, severity_text="DEBUG", time_ns=1_700_000_000_000_000_001,
                   **{"session.id": "sess-follow"}),
            record("arrived later", severity=13, severity_text="WARN", time_ns=1_700_000_000_000_000_002,
                   **{"session.id": "sess-follow"})]).SerializeToString())
        line = reader.wait_for(lambda line: line.endswith("arrived later"))
        assert " WARN " in line and " hand-built " in line
        # a retried request stores nothing new and prints nothing
        grpc_export(service, request([record("stored before", **{"session.id": "sess-follow"})]).SerializeToString())
        grpc_export(service, request([record("last", time_ns=1_700_000_000_000_000_003,
                                             **{"session.id": "sess-follow"})]).SerializeToString())
        reader.wait_for(lambda line: line.endswith("last"))
        assert [line.split(maxsplit=4)[4] for line in reader.lines] == ["stored before", "arrived later", "last"]
    finally:
        process.terminate()
        process.wait(10)
