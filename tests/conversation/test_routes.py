"""The conversation routes of a running service: ``/v1/sessions/{id}/messages``,
``/v1/threads/{id}/messages``, ``/v1/sessions/{id}/spans/{span_id}``, and their errors."""

from __future__ import annotations

from tests.conversation import conversation as c
from tests.conversation.builders import TRACE, Raw, Spans, any_value, genai_message, span_id, summary
from tests.conversation.live import get, post, stamp


def test_session_messages(service):
    post(service, stamp(c.genai_json().data, session__id="sess-chat", gen_ai__conversation__id="thr-chat"))
    body = get(service, "/v1/sessions/sess-chat/messages")
    assert body["session_id"] == "sess-chat" and body["truncated"] is False
    assert summary(body["data"]) == c.EXPECTED
    page = get(service, "/v1/sessions/sess-chat/messages?limit=2&offset=1")
    assert summary(page["data"]) == c.EXPECTED[1:3] and page["truncated"] is True
    assert (page["limit"], page["offset"]) == (2, 1)
    assert get(service, "/v1/sessions/nope/messages", 404) == {"error": "no session 'nope'"}
    assert get(service, "/v1/sessions/sess-chat/messages?limit=x", 400)["parameter"] == "limit"
    assert get(service, "/v1/sessions/sess-chat/messages?limit=2001", 400)["parameter"] == "limit"
    assert get(service, "/v1/sessions/sess-chat/messages?lmit=2", 400)["parameter"] == "lmit"


def test_thread_messages_across_sessions(service):
    u1, a1 = genai_message("user", "Hi"), genai_message("assistant", "Hello!")
    u2, a2 = genai_message("user", "Refund please"), genai_message("assistant", "Refunded.")
    first, second = Spans(), Spans()
    first.add(1, 0, 1000, name="chat", gen_ai__input__messages=[u1], gen_ai__output__messages=[a1])
    second.add(2, 60_000, 61_000, trace=bytes(15) + b"\x02", name="chat",
               gen_ai__input__messages=[u1, a1, u2], gen_ai__output__messages=[a2])
    post(service, stamp(first.data, session__id="sess-a", gen_ai__conversation__id="thr-x"))
    post(service, stamp(second.data, session__id="sess-b", gen_ai__conversation__id="thr-x"))
    body = get(service, "/v1/threads/thr-x/messages")
    assert body["thread_id"] == "thr-x" and body["truncated"] is False
    assert [(m["session_id"], m["content"][0]["text"]) for m in body["data"]] == [
        ("sess-a", "Hi"), ("sess-a", "Hello!"), ("sess-b", "Refund please"), ("sess-b", "Refunded.")]
    assert len(get(service, "/v1/threads/thr-x/messages?limit=1")["data"]) == 1
    assert get(service, "/v1/threads/nope/messages", 404) == {"error": "no thread 'nope'"}


def _span_session() -> Spans:
    spans = Spans(resource={"service.name": "billing", "deployment.environment.name": "prod"})
    root = spans.add(1, 0, 1500, name="invoke_agent billing", gen_ai__agent__name="billing", retries=2,
                     tags=Raw(["a", "b"]), events=[("exception", {"exception.type": "ValueError",
                                                             "exception.message": "bad card",
                                                             "exception.stacktrace": "Traceback...\nValueError"})])
    root.status.code = 2
    root.status.message = "bad card"
    root.kind = 3
    link = root.links.add(trace_id=bytes(16 * [9]), span_id=span_id(77))
    link.attributes.add(key="why", value=any_value("follows"))
    spans.add(2, 10, 20, parent=1, name="chat", gen_ai__request__model="gpt-4o")
    spans.add(2, 30, 40, trace=bytes(15) + b"\x05", name="same span id, other trace")
    return spans


def test_span_details(service):
    post(service, stamp(_span_session().data, session__id="sess-span"))
    span = get(service, f"/v1/sessions/sess-span/spans/{span_id(1).hex()}")
    assert span["trace_id"] == TRACE.hex() and span["span_id"] == span_id(1).hex()
    assert span["parent_span_id"] is None and span["name"] == "invoke_agent billing" and span["kind"] == "client"
    assert span["start_time"] == "2024-05-01T12:34:56.000000Z" and span["duration_ms"] == 1500.0
    assert span["status"] == {"code": "error", "message": "bad card"}
    assert span["attributes"]["gen_ai.agent.name"] == "billing" and span["attributes"]["retries"] == 2
    assert span["attributes"]["tags"] == ["a", "b"] and span["attributes"]["session.id"] == "sess-span"
    assert span["resource"] == {"service.name": "billing", "deployment.environment.name": "prod"}
    assert span["scope"] == {"name": "tests", "version": None}
    assert span["events"] == [{"name": "exception", "time": "2024-05-01T12:34:56.000000Z", "attributes": {
        "exception.type": "ValueError", "exception.message": "bad card",
        "exception.stacktrace": "Traceback...\nValueError"}}]
    assert span["exception"] == {"type": "ValueError", "message": "bad card", "stacktrace": "Traceback...\nValueError"}
    assert span["links"] == [{"trace_id": "09" * 16, "span_id": span_id(77).hex(), "attributes": {"why": "follows"}}]
    child = get(service, f"/v1/sessions/sess-span/spans/{span_id(2).hex()}?trace_id={TRACE.hex()}")
    assert child["parent_span_id"] == span_id(1).hex() and child["exception"] is None
    assert child["status"] == {"code": "unset", "message": None}
    short = get(service, f"/v1/sessions/sess-span/spans/1?trace_id={TRACE.hex()[:30].lstrip('0')}", 404)
    assert "no span" in short["error"]
    assert get(service, "/v1/sessions/sess-span/spans/1")["span_id"] == span_id(1).hex()  # zero-padded
    ambiguous = get(service, f"/v1/sessions/sess-span/spans/{span_id(2).hex()}", 400)
    assert ambiguous["parameter"] == "trace_id"
    assert get(service, "/v1/sessions/sess-span/spans/xyz", 400)["parameter"] == "span_id"
    assert get(service, "/v1/sessions/sess-span/spans/1?trace_id=zz", 400)["parameter"] == "trace_id"
    assert get(service, "/v1/sessions/sess-span/spans/1?tid=1", 400)["parameter"] == "tid"
    assert get(service, f"/v1/sessions/sess-span/spans/{span_id(99).hex()}", 404)["error"].startswith("no span")
    assert get(service, "/v1/sessions/nope/spans/01", 404) == {"error": "no session 'nope'"}


def test_openapi_describes_the_conversation_routes(service):
    doc = get(service, "/openapi.json")
    for path in ("/v1/sessions/{session_id}/messages", "/v1/threads/{thread_id}/messages",
                 "/v1/sessions/{session_id}/spans/{span_id}"):
        assert "get" in doc["paths"][path], path
    schemas = doc["components"]["schemas"]
    post(service, stamp(c.genai_json().data, session__id="sess-doc"))
    message = get(service, "/v1/sessions/sess-doc/messages")["data"][0]
    assert set(schemas["Message"]["properties"]) == set(message)
    assert set(schemas["SessionMessages"]["properties"]) == set(get(service, "/v1/sessions/sess-doc/messages"))
    post(service, stamp(_span_session().data, session__id="sess-doc2"))
    assert set(schemas["SpanDetails"]["properties"]) == set(get(service, "/v1/sessions/sess-doc2/spans/01"))
    params = {p["name"] for p in doc["paths"]["/v1/sessions"]["get"]["parameters"]}
    assert params >= {"agent", "tool", "environment", "q", "status"}
