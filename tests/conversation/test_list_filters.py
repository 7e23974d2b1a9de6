"""List filters served from the summary: agent, tool, environment, text (``q``), several statuses;
REST, the SessionService and the environments of a session."""

from __future__ import annotations

import grpc
import pytest

from otel_sessions.v1 import session_service_pb2 as pb
from otel_sessions.v1 import session_service_pb2_grpc as pb_grpc
from tests.conversation.builders import Spans
from tests.conversation.live import get, post, stamp


def _session(n: int, resource: dict, **root) -> Spans:
    spans = Spans(resource=resource)
    spans.add(1, n * 1000, n * 1000 + 500, trace=bytes(15) + bytes([n]), name="root", **root)
    return spans


@pytest.fixture()
def three(service):
    first = _session(1, {"service.name": "support", "deployment.environment.name": "prod"},
                     gen_ai__agent__name="router", events=[("session.end", {})])
    first.add(2, 1100, 1200, trace=bytes(15) + b"\x01", parent=1, name="tool", gen_ai__tool__name="search_orders")
    post(service, stamp(first.data, session__id="s-1", session__name="Refund request", user__id="alice"))
    second = _session(2, {"service.name": "support", "deployment.environment": "staging"},
                      gen_ai__agent__name="billing", gen_ai__tool__name="refund")
    second.scope.spans[0].status.code = 2  # a failed root
    post(service, stamp(second.data, session__id="s-2", session__name="Billing question", user__id="bob"))
    third = _session(3, {"service.name": "chat", "deployment.environment.name": "prod",
                         "deployment.environment": "old-name"}, session__escalated=True)
    post(service, stamp(third.data, session__id="s-3", session__name="Chat", user__id="carol"))
    return service


def _ids(service, query: str) -> set[str]:
    return {s["id"] for s in get(service, "/v1/sessions?" + query)["data"]}


def test_rest_filters(three):
    assert _ids(three, "agent=router") == {"s-1"}
    assert _ids(three, "tool=refund") == {"s-2"} and _ids(three, "tool=search_orders") == {"s-1"}
    assert _ids(three, "environment=prod") == {"s-1", "s-3"} and _ids(three, "environment=staging") == {"s-2"}
    assert _ids(three, "environment=old-name") == set()  # deployment.environment.name wins
    assert _ids(three, "q=BILL") == {"s-2"} and _ids(three, "q=alice") == {"s-1"}
    assert _ids(three, "q=s-3") == {"s-3"} and _ids(three, "q=search_ord") == {"s-1"}
    assert _ids(three, "q=prod") == {"s-1", "s-3"} and _ids(three, "q=%20%20") == {"s-1", "s-2", "s-3"}
    assert _ids(three, "status=failed,escalated") == {"s-2", "s-3"}
    assert _ids(three, "status=completed") == {"s-1"}
    assert _ids(three, "agent=billing&status=failed&environment=staging&q=question") == {"s-2"}
    assert _ids(three, "agent=billing&status=completed") == set()
    body = get(three, "/v1/sessions?q=prod")
    assert body["partial"] is False and body["total"] == 2
    assert {s["id"]: s["environments"] for s in get(three, "/v1/sessions")["data"]} == {
        "s-1": ["prod"], "s-2": ["staging"], "s-3": ["prod"]}
    assert {s["id"] for s in get(three, "/v1/users/alice/sessions?q=refund")["data"]} == {"s-1"}
    assert get(three, "/v1/sessions?q=" + "x" * 257, 400)["parameter"] == "q"


def test_grpc_filters(three):
    with grpc.insecure_channel(three.grpc_endpoint) as channel:
        stub = pb_grpc.SessionServiceStub(channel)

        def ids(**request) -> set[str]:
            return {s.id for s in stub.ListSessions(pb.ListSessionsRequest(**request)).sessions}

        assert ids(agent="router") == {"s-1"} and ids(tool="refund") == {"s-2"}
        assert ids(environment="prod") == {"s-1", "s-3"} and ids(q="CAROL") == {"s-3"}
        assert ids(status=["failed", "escalated"]) == {"s-2", "s-3"}
        assert list(stub.GetSession(pb.GetSessionRequest(session_id="s-2")).environments) == ["staging"]
        with pytest.raises(grpc.RpcError) as info:
            stub.ListSessions(pb.ListSessionsRequest(q="x" * 300))
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "q" in info.value.details()
