"""Bytes the HTTP port cannot read: one WARNING line each minute, never a traceback per retry."""

from __future__ import annotations

import logging
import socket

from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult

from otel_sessions.exporter.serve.bad_http_log import INTERVAL_S, BadHttpLogFilter


def _server_records(caplog) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "aiohttp.server"]


def test_a_grpc_exporter_on_the_http_port_gets_one_line(service, caplog):
    caplog.set_level(logging.INFO, logger="aiohttp.server")
    port = service.http_url.rsplit(":", 1)[1]
    exporter = OTLPSpanExporter(endpoint=f"127.0.0.1:{port}", insecure=True, timeout=3)
    provider = TracerProvider()
    results = []

    class Recording(SimpleSpanProcessor):
        def on_end(self, span):
            results.append(exporter.export([span]))

    provider.add_span_processor(Recording(exporter))
    provider.get_tracer("wrong port").start_span("x").end()  # the exporter retries for 3 s
    provider.shutdown()
    assert results == [SpanExportResult.FAILURE]
    records = _server_records(caplog)
    assert len(records) == 1, [r.getMessage() for r in records]
    assert records[0].levelno == logging.WARNING and records[0].exc_info is None
    assert "HTTP/2 client" in records[0].getMessage() and "gRPC port" in records[0].getMessage()

    # a malformed HTTP/1.1 request: its own line, also once a minute
    for _ in range(3):
        with socket.create_connection(("127.0.0.1", int(port)), timeout=5) as raw:
            raw.sendall(b"POST /v1/traces HTTP/1.1\r\nHost: x\r\nContent-Length: twelve\r\n\r\n")
            assert raw.recv(100).split(b" ")[1] == b"400"
    lines = [r.getMessage() for r in _server_records(caplog)]
    assert len(lines) == 2 and "could not read" in lines[1] and all("Traceback" not in line for line in lines)


def test_the_filter_lets_one_line_through_per_interval_and_other_records_alone():
    from aiohttp.http_exceptions import BadHttpMessage

    now = [0.0]
    f = BadHttpLogFilter(clock=lambda: now[0])

    def record(error: Exception | None) -> logging.LogRecord:
        exc_info = (type(error), error, None) if error else None
        return logging.LogRecord("aiohttp.server", logging.ERROR, __file__, 1, "Error handling request", (), exc_info)

    first = record(BadHttpMessage("Pause on PRI/Upgrade"))
    assert f.filter(first) and first.levelno == logging.WARNING and first.exc_info is None
    assert not f.filter(record(BadHttpMessage("Pause on PRI/Upgrade")))
    now[0] = INTERVAL_S + 1
    assert f.filter(record(BadHttpMessage("Pause on PRI/Upgrade")))
    other = record(RuntimeError("a bug"))
    assert f.filter(other) and other.levelno == logging.ERROR and other.exc_info is not None
