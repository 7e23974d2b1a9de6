"""Live tail with log records: the SSE stream of GET /v1/sessions/{id}/tail sends them as
``event: logs`` (spans stay plain ``data:`` events), and the gRPC TailSession stream sends
them in TailEvent.resource_logs when asked (include_logs); each record once."""

from __future__ import annotations

import json
import threading
import urllib.request

import grpc
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcSpanExporter

from otel_sessions.v1 import session_service_pb2 as pb
from otel_sessions.v1 import session_service_pb2_grpc as pb_grpc
from tests.logs.helpers import grpc_export, record, request
from tests.support import all_spans, provider_with


def _log(service, body: str, n: int) -> None:
    grpc_export(service, request([record(body, time_ns=1_700_000_000_000_000_000 + n,
                                         **{"session.id": "sess-live"})]).SerializeToString())


def test_sse_tail_sends_logs_as_named_events(service):
    _log(service, "before the tail", 0)
    tracer = provider_with(GrpcSpanExporter(endpoint=service.grpc_endpoint, insecure=True)).get_tracer("t")
    events: list[tuple[str | None, dict]] = []
    ready = threading.Event()
    done = threading.Event()

    def read() -> None:
        with urllib.request.urlopen(service.http_url + "/v1/sessions/sess-live/tail", timeout=30) as response:
            event = None
            for raw in response:
                line = raw.decode().rstrip("\n")
                if line.startswith(": tailing"):
                    ready.set()
                elif line.startswith("event: "):
                    event = line[len("event: "):]
                elif line.startswith("data: "):
                    events.append((event, json.loads(line[len("data: "):])))
                    if len(events) >= 3:
                        done.set()
                        return
                elif not line:
                    event = None

    threading.Thread(target=read, daemon=True).start()
    assert ready.wait(10)
    _log(service, "live 1", 1)
    with tracer.start_as_current_span("a span", attributes={"session.id": "sess-live"}):
        pass
    _log(service, "live 1", 1)  # a retry: nothing new, no event
    _log(service, "live 2", 2)
    assert done.wait(20), events
    kinds = [kind for kind, _data in events]
    assert kinds == ["logs", None, "logs"]
    bodies = [r["body"]["stringValue"] for kind, data in events if kind == "logs"
              for rl in data["resourceLogs"] for sl in rl["scopeLogs"] for r in sl["logRecords"]]
    assert bodies == ["live 1", "live 2"]
    assert [s["name"] for rs in events[1][1]["resourceSpans"] for ss in rs["scopeSpans"] for s in ss["spans"]] == [
        "a span"]


def test_grpc_tail_sends_logs_only_when_asked(service):
    _log(service, "before the tail", 0)
    tracer = provider_with(GrpcSpanExporter(endpoint=service.grpc_endpoint, insecure=True)).get_tracer("t")
    with grpc.insecure_channel(service.grpc_endpoint) as channel:
        stub = pb_grpc.SessionServiceStub(channel)
        with_logs = stub.TailSession(pb.TailSessionRequest(session_id="sess-live", include_logs=True))
        spans_only = stub.TailSession(pb.TailSessionRequest(session_id="sess-live"))
        for call in (with_logs, spans_only):
            assert dict(call.initial_metadata())["x-otel-sessions-tail"] == "live"
        got: dict[str, list] = {"logs": [], "spans": []}
        done = {"logs": threading.Event(), "spans": threading.Event()}

        def read(call, name: str, want: int) -> None:
            for event in call:
                got[name].append(event)
                if len(got[name]) >= want:
                    done[name].set()
                    return

        threading.Thread(target=read, args=(with_logs, "logs", 3), daemon=True).start()
        threading.Thread(target=read, args=(spans_only, "spans", 1), daemon=True).start()
        _log(service, "live 1", 1)
        with tracer.start_as_current_span("a span", attributes={"session.id": "sess-live"}):
            pass
        _log(service, "live 2", 2)
        assert done["logs"].wait(20) and done["spans"].wait(20), got
        with_logs.cancel()
        spans_only.cancel()
    kinds = ["logs" if e.resource_logs else "spans" for e in got["logs"]]
    assert kinds == ["logs", "spans", "logs"]
    assert [r.body.string_value for e in got["logs"] for rl in e.resource_logs for sl in rl.scope_logs
            for r in sl.log_records] == ["live 1", "live 2"]
    assert [s.name for s in all_spans(got["spans"][0])] == ["a span"] and not got["spans"][0].resource_logs
    # a client built against the old definition reads the spans as TracesData
    from opentelemetry.proto.trace.v1.trace_pb2 import TracesData

    assert [s.name for s in all_spans(TracesData.FromString(got["logs"][1].SerializeToString()))] == ["a span"]
