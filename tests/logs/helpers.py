"""Helpers of the session-log tests: real OTel SDK log pipelines into a running service, and
hand-built OTLP log requests for the cases an SDK never sends (bad ids, huge numbers)."""

from __future__ import annotations

import logging
import os
import urllib.error
import urllib.request
from collections.abc import Iterable

import grpc
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord
from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler
from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor
from opentelemetry.sdk.resources import Resource

from otel_sessions.processor import SessionLogProcessor

LOGS_EXPORT = "/opentelemetry.proto.collector.logs.v1.LogsService/Export"


def log_provider(exporter, service_name: str = "test-app", session_processor: bool = True) -> LoggerProvider:
    """A real LoggerProvider: ``SessionLogProcessor`` (unless told not to), then a synchronous
    export through ``exporter``."""
    provider = LoggerProvider(resource=Resource.create({"service.name": service_name}))
    if session_processor:
        provider.add_log_record_processor(SessionLogProcessor())
    provider.add_log_record_processor(SimpleLogRecordProcessor(exporter))
    return provider


def stdlib_logger(provider: LoggerProvider, name: str) -> logging.Logger:
    """A stdlib logger whose records go (only) to ``provider`` through the SDK's LoggingHandler."""
    logger = logging.getLogger(f"{name}.{id(provider)}")
    logger.handlers[:] = [LoggingHandler(logger_provider=provider)]
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    return logger


def grpc_log_exporter(service, **options):
    from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter

    return OTLPLogExporter(endpoint=service.grpc_endpoint, insecure=True, **options)


def http_log_exporter(service, **options):
    from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter

    return OTLPLogExporter(endpoint=service.http_url + "/v1/logs", **options)


def _value(value) -> AnyValue:
    if isinstance(value, bool):
        return AnyValue(bool_value=value)
    if isinstance(value, int):
        return AnyValue(int_value=value)
    if isinstance(value, float):
        return AnyValue(double_value=value)
    return AnyValue(string_value=str(value))


def record(body: str = "hello", *, time_ns: int | None = None, severity: int = 9, severity_text: str = "INFO",
           trace_id: bytes = b"", span_id: bytes = b"", **attributes) -> LogRecord:
    """A hand-built OTLP LogRecord (attribute names with dots given as ``**{"session.id": ...}``)."""
    return LogRecord(time_unix_nano=time_ns if time_ns is not None else 1_700_000_000_000_000_000,
                     severity_number=severity, severity_text=severity_text, body=AnyValue(string_value=body),
                     trace_id=trace_id, span_id=span_id,
                     attributes=[KeyValue(key=k, value=_value(v)) for k, v in attributes.items()])


def request(records: Iterable[LogRecord], service_name: str = "hand-built", **resource) -> ExportLogsServiceRequest:
    out = ExportLogsServiceRequest()
    rl = out.resource_logs.add()
    for key, value in {"service.name": service_name, **resource}.items():
        rl.resource.attributes.add(key=key, value=_value(value))
    sl = rl.scope_logs.add()
    sl.scope.name = "tests"
    sl.log_records.extend(records)
    return out


def post(service, body: bytes, content_type: str = "application/x-protobuf", path: str = "/v1/logs",
         headers: dict | None = None, method: str = "POST"):
    """(status, headers, body) of an HTTP request to the service."""
    req = urllib.request.Request(service.http_url + path, data=body if method == "POST" else None, method=method,
                                 headers={"Content-Type": content_type, **(headers or {})})
    try:
        with urllib.request.urlopen(req, timeout=10) as response:
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers, exc.read()


def grpc_export(service, body: bytes, metadata=None) -> bytes:
    with grpc.insecure_channel(service.grpc_endpoint) as channel:
        return channel.unary_unary(LOGS_EXPORT)(body, timeout=10, metadata=metadata)


def random_id(size: int) -> bytes:
    return os.urandom(size)
