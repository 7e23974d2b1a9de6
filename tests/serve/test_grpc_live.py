"""SessionService calls that change or follow the store (each test on its own flushed Redis)."""

from __future__ import annotations

import threading

import grpc
import pytest
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcExporter

from otel_sessions.v1 import session_service_pb2 as pb
from otel_sessions.v1 import session_service_pb2_grpc as pb_grpc
from tests import dataset
from tests.support import all_spans, provider_with


def test_delete_session(service):
    dataset.emit(service.http_url, dataset.base_ns())
    with grpc.insecure_channel(service.grpc_endpoint) as channel:
        stub = pb_grpc.SessionServiceStub(channel)
        stub.DeleteSession(pb.DeleteSessionRequest(session_id="sess-4"))
        assert "sess-4" not in {s.id for s in stub.ListSessions(pb.ListSessionsRequest()).sessions}
        assert "sess-4" not in {s.id for s in stub.ListSessions(pb.ListSessionsRequest(user_id="u-2")).sessions}
        assert [s.id for s in stub.GetThread(pb.GetThreadRequest(thread_id="t-2")).sessions] == ["sess-2", "sess-3"]
        with pytest.raises(grpc.RpcError) as info:
            stub.GetSession(pb.GetSessionRequest(session_id="sess-4"))
        assert info.value.code() == grpc.StatusCode.NOT_FOUND


def test_tail_session_receives_spans_exported_after_the_call(service):
    provider = provider_with(GrpcExporter(endpoint=service.grpc_endpoint, insecure=True))
    tracer = provider.get_tracer("tail-test")
    ids = {"session.id": "sess-live", "user.id": "u-live"}
    with tracer.start_as_current_span("before the tail", attributes=ids):
        pass

    with grpc.insecure_channel(service.grpc_endpoint) as channel:
        stub = pb_grpc.SessionServiceStub(channel)
        call = stub.TailSession(pb.TailSessionRequest(session_id="sess-live"))
        assert dict(call.initial_metadata())["x-otel-sessions-tail"] == "live"  # subscribed from here on
        received: list[str] = []
        done = threading.Event()

        def read() -> None:
            for data in call:
                received.extend(span.name for span in all_spans(data))
                if len(received) >= 3:
                    done.set()
                    return

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        for i in range(3):
            with tracer.start_as_current_span(f"live {i}", attributes=ids):
                pass
        assert done.wait(30), received
        call.cancel()
        reader.join(10)
    provider.shutdown()
    assert received == ["live 0", "live 1", "live 2"]  # nothing from before the call, each span once
