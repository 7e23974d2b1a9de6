"""GET /v1/traces/{trace_id}: the session of a stored trace (or null), its span count, 404."""

from __future__ import annotations

from tests.support import http, send, tracer


def test_trace_lookup_names_its_session_or_null(service):
    t, memory = tracer("test-app")
    with t.start_as_current_span("turn", attributes={"session.id": "sess-tr"}):
        with t.start_as_current_span("llm"):
            pass
    with t.start_as_current_span("no session anywhere"):
        with t.start_as_current_span("child"):
            pass
    send(service.grpc_endpoint, memory.get_finished_spans())
    spans = memory.get_finished_spans()
    in_session = f"{spans[0].context.trace_id:032x}"
    lonely = f"{spans[-1].context.trace_id:032x}"
    url = service.http_url + "/v1/traces/"
    assert http("GET", url + in_session)[:2] == (200, {"trace_id": in_session, "session_id": "sess-tr",
                                                      "span_count": 2})
    assert http("GET", url + lonely.upper())[:2] == (200, {"trace_id": lonely, "session_id": None,
                                                          "span_count": 2})
    status, body, _ = http("GET", url + "ab" * 16)
    assert status == 404 and body["error"] == f"no span of trace {'ab' * 16} is stored"
    for bad in ("abc", "0" * 32, "zz" * 16):
        status, body, _ = http("GET", url + bad)
        assert (status, body["parameter"]) == (400, "trace_id"), bad
    assert http("DELETE", service.http_url + "/v1/sessions/sess-tr")[0] == 204
    assert http("GET", url + in_session)[0] == 404
