"""SessionService over a real gRPC channel: each method, TailSession live, NOT_FOUND and INVALID_ARGUMENT."""

from __future__ import annotations

import grpc
import pytest
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from otel_sessions.v1 import session_service_pb2 as pb
from otel_sessions.v1 import session_service_pb2_grpc as pb_grpc
from tests.dataset import BY_ID, PLAN, expected, sorted_ids
from tests.support import all_spans


@pytest.fixture()
def stub(loaded):
    with grpc.insecure_channel(loaded.grpc_endpoint) as channel:
        yield pb_grpc.SessionServiceStub(channel)


def test_list_sessions_exact(stub, loaded):
    response = stub.ListSessions(pb.ListSessionsRequest())
    assert response.total == len(PLAN) and response.limit == 50 and not response.partial
    assert [s.id for s in response.sessions] == sorted_ids(PLAN, "start", True, loaded.base)
    for s in response.sessions:
        want = expected(BY_ID[s.id], loaded.base)
        assert (s.user_id, s.thread_id or None, s.name, s.status) == (want["user_id"], want["thread_id"], want["name"],
                                                                      want["status"])
        assert (s.trace_count, s.span_count, s.input_tokens, s.output_tokens, s.total_tokens) == (
            want["trace_count"], want["span_count"], want["input_tokens"], want["output_tokens"], want["total_tokens"])
        assert s.cost_usd == pytest.approx(want["cost_usd"])
        assert s.start_time_unix_nano == want["start_us"] * 1000 and s.end_time_unix_nano == want["end_us"] * 1000
        assert dict(s.metadata) == want["metadata"] and list(s.services) == want["services"]


@pytest.mark.parametrize("key", ["start", "end", "duration", "traces", "spans", "tokens", "cost"])
def test_list_sessions_sorts_and_pages(stub, loaded, key):
    for order in ("asc", "desc"):
        response = stub.ListSessions(pb.ListSessionsRequest(sort_by=key, sort_order=order, limit=3, offset=1))
        assert [s.id for s in response.sessions] == sorted_ids(PLAN, key, order == "desc", loaded.base)[1:4]


def test_list_sessions_filters(stub, loaded):
    def listed(**fields):
        return {s.id for s in stub.ListSessions(pb.ListSessionsRequest(**fields)).sessions}

    assert listed(user_id="u-2") == {"sess-3", "sess-4"}
    assert listed(thread_id="t-1") == {"sess-0", "sess-1"}
    assert listed(status=["failed", "completed"]) == {"sess-0", "sess-1"}
    assert listed(service="worker", model="claude") == {"sess-3", "sess-5"}
    assert listed(metadata={"plan": "pro"}, name="billing") == {"sess-0", "sess-2", "sess-4"}
    start = (loaded.base + 120 * 10**9)
    assert listed(start_time_unix_nano=start, end_time_unix_nano=start + 60 * 10**9) == {"sess-2", "sess-3"}
    assert stub.ListSessions(pb.ListSessionsRequest(limit=0)).sessions == []
    assert stub.ListSessions(pb.ListSessionsRequest(limit=0)).total == len(PLAN)


@pytest.mark.parametrize("request_fields, field", [
    ({"limit": 501}, "limit"),
    ({"sort_by": "colour"}, "sort_by"),
    ({"sort_order": "up"}, "sort_order"),
    ({"status": ["sleepy"]}, "status"),
])
def test_list_sessions_invalid_argument(stub, request_fields, field):
    with pytest.raises(grpc.RpcError) as info:
        stub.ListSessions(pb.ListSessionsRequest(**request_fields))
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT and field in info.value.details()


def test_get_session_and_spans(stub, loaded):
    session = stub.GetSession(pb.GetSessionRequest(session_id="sess-3"))
    assert session.id == "sess-3" and session.span_count == BY_ID["sess-3"].span_count
    assert [t.root_name for t in session.traces] == [f"turn {i}" for i in range(4)]
    assert all(t.span_count == 4 and t.total_tokens == 140 and len(t.trace_id) == 32 for t in session.traces)
    data = stub.GetSessionSpans(pb.GetSessionSpansRequest(session_id="sess-3"))
    spans = all_spans(data)
    assert len(spans) == session.span_count
    assert {s.trace_id.hex() for s in spans} == {t.trace_id for t in session.traces}


def test_get_thread(stub):
    thread = stub.GetThread(pb.GetThreadRequest(thread_id="t-2"))
    assert thread.id == "t-2" and [s.id for s in thread.sessions] == ["sess-2", "sess-3", "sess-4"]
    assert thread.total == 3
    assert [s.id for s in stub.GetThread(pb.GetThreadRequest(thread_id="t-2", limit=1, offset=2)).sessions] == ["sess-4"]


@pytest.mark.parametrize("method, request_message", [
    ("GetSession", pb.GetSessionRequest(session_id="nope")),
    ("GetSessionSpans", pb.GetSessionSpansRequest(session_id="nope")),
    ("GetThread", pb.GetThreadRequest(thread_id="nope")),
    ("DeleteSession", pb.DeleteSessionRequest(session_id="nope")),
])
def test_unknown_ids_are_not_found(stub, method, request_message):
    with pytest.raises(grpc.RpcError) as info:
        getattr(stub, method)(request_message)
    assert info.value.code() == grpc.StatusCode.NOT_FOUND and "nope" in info.value.details()


def test_unknown_session_tail_is_not_found(stub):
    with pytest.raises(grpc.RpcError) as info:
        next(iter(stub.TailSession(pb.TailSessionRequest(session_id="nope"))))
    assert info.value.code() == grpc.StatusCode.NOT_FOUND


@pytest.mark.parametrize("method, request_message", [
    ("GetSession", pb.GetSessionRequest()),
    ("GetThread", pb.GetThreadRequest()),
    ("DeleteSession", pb.DeleteSessionRequest()),
    ("GetThread", pb.GetThreadRequest(thread_id="t-1", limit=501)),
])
def test_missing_ids_are_invalid_argument(stub, method, request_message):
    with pytest.raises(grpc.RpcError) as info:
        getattr(stub, method)(request_message)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_reflection_lists_the_session_service(loaded):
    with grpc.insecure_channel(loaded.grpc_endpoint) as channel:
        reflection = reflection_pb2_grpc.ServerReflectionStub(channel)
        answers = reflection.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")]))
        names = {s.name for answer in answers for s in answer.list_services_response.service}
    assert "otel_sessions.v1.SessionService" in names
