"""Conversation figures: message counts, first and last messages, model-call and tool timings,
from every recorded convention; in list answers (REST, gRPC), cached and recomputed, and the
``q`` filter over messages."""

from __future__ import annotations

import grpc
import pytest
import redis

from otel_sessions.exporter.lookup.calls import SessionContent
from otel_sessions.exporter.lookup.figures import EXCERPT, FigureCache, conversation_figures
from otel_sessions.v1 import session_service_pb2 as pb
from otel_sessions.v1 import session_service_pb2_grpc as pb_grpc
from tests.conversation import conversation as c
from tests.conversation.builders import BASE_NS, Spans, genai_message
from tests.conversation.live import get, post, stamp

_TEXT_CONVENTIONS = [c.genai_json, c.genai_span_events, c.openinference, c.traceloop, c.vercel_ai, c.langfuse,
                     c.mlflow]


@pytest.mark.parametrize("recorded", _TEXT_CONVENTIONS, ids=lambda f: f.__name__)
def test_figures_of_each_convention(recorded):
    f = conversation_figures(SessionContent("s", recorded().data))
    # "Weather in Paris?", "Thanks!"; the tool-call turn, "It is sunny in Paris.", "You're welcome."
    assert (f.message_count, f.user_messages, f.assistant_messages) == (5, 2, 3)
    assert f.first_user_message == "Weather in Paris?"
    assert f.last_assistant_message == "You're welcome."
    assert f.model_calls == 3 and f.response_latency_ms == 1000.0  # calls A, B, C: one second each
    assert f.time_to_first_token_ms is None  # none was streamed


def test_tool_figures():
    f = conversation_figures(SessionContent("s", c.genai_json().data))
    assert (f.tool_calls, f.tool_errors, f.tool_latency_ms) == (1, 0, 500.0)
    f = conversation_figures(SessionContent("s", c.vercel_ai().data))
    assert (f.tool_calls, f.tool_latency_ms) == (1, 500.0)  # the ai.toolCall span
    spans = Spans()
    spans.add(1, 0, 100, gen_ai__operation__name="execute_tool", gen_ai__tool__name="refund")
    spans.add(2, 0, 300, openinference__span__kind="TOOL").status.code = 2
    spans.add(3, 0, 50, traceloop__span__kind="tool")
    f = conversation_figures(SessionContent("s", spans.data))
    assert (f.tool_calls, f.tool_errors, f.tool_latency_ms, f.model_calls) == (3, 1, 150.0, 0)
    assert f.message_count == 0 and f.first_user_message is None and f.response_latency_ms is None


def test_time_to_first_token_from_each_source():
    spans = Spans()
    chat = {"gen_ai__operation__name": "chat"}
    spans.add(1, 0, 2000, gen_ai__response__time_to_first_chunk=0.25, **chat)  # seconds (GenAI)
    spans.add(2, 0, 2000, gen_ai__response__time_to_first_token=0.5, **chat)  # seconds
    spans.add(3, 0, 2000, ai__operationId="ai.streamText.doStream", ai__response__msToFirstChunk=750.0)  # ms
    start = BASE_NS // 1000 // 1000  # ms
    from datetime import datetime, timezone
    first = datetime.fromtimestamp((start + 1000) / 1000, tz=timezone.utc).isoformat().replace("+00:00", "Z")
    spans.add(4, 0, 2000, langfuse__observation__type="generation", langfuse__observation__completion_start_time=first)
    spans.add(5, 0, 2000, gen_ai__response__time_to_first_chunk="not a number", **chat)  # ignored, still a call
    f = conversation_figures(SessionContent("s", spans.data))
    assert f.model_calls == 5 and f.response_latency_ms == 2000.0
    assert f.time_to_first_token_ms == pytest.approx((250 + 500 + 750 + 1000) / 4)


def test_long_messages_are_cut():
    spans = Spans()
    long = "word " * 100
    spans.add(1, 0, 10, gen_ai__operation__name="chat", gen_ai__input__messages=[genai_message("user", long)],
              gen_ai__output__messages=[genai_message("assistant", "x" * 500)])
    f = conversation_figures(SessionContent("s", spans.data))
    assert len(f.first_user_message) == EXCERPT and f.first_user_message.endswith("…")
    assert f.last_assistant_message == "x" * (EXCERPT - 1) + "…"


def _conversation(session_id: str, user_text: str, answer: str, n: int) -> Spans:
    spans = Spans()
    spans.add(1, 0, 800, trace=bytes(15) + bytes([n]), name="chat gpt-4o", gen_ai__operation__name="chat",
              gen_ai__input__messages=[genai_message("user", user_text)],
              gen_ai__output__messages=[genai_message("assistant", answer)])
    return stamp(spans.data, session__id=session_id)


def test_list_answers_carry_the_figures_and_follow_new_spans(service):
    post(service, _conversation("fig-1", "Where is my parcel?", "It left the depot.", 1))
    listed = {s["id"]: s for s in get(service, "/v1/sessions")["data"]}
    figures = listed["fig-1"]["conversation"]
    assert figures["message_count"] == 2 and figures["first_user_message"] == "Where is my parcel?"
    assert figures["last_assistant_message"] == "It left the depot." and figures["model_calls"] == 1
    assert get(service, "/v1/sessions/fig-1")["conversation"] == figures

    client = redis.Redis.from_url(service.redis_url)
    key = service.store.keys.conversation("fig-1")
    assert client.exists(key) and 0 < client.pttl(key) <= service.store.retention_ms
    # a new turn: the cached figures are stale (the span count moved) and computed again
    later = Spans()
    later.add(2, 5000, 6000, trace=bytes(15) + b"\x02", name="chat gpt-4o", gen_ai__operation__name="chat",
              gen_ai__input__messages=[genai_message("user", "Where is my parcel?"),
                                       genai_message("assistant", "It left the depot."),
                                       genai_message("user", "When will it arrive?")],
              gen_ai__output__messages=[genai_message("assistant", "Tomorrow before noon.")])
    post(service, stamp(later.data, session__id="fig-1"))
    figures = get(service, "/v1/sessions?q=fig-1")["data"][0]["conversation"]
    assert figures["message_count"] == 4 and figures["last_assistant_message"] == "Tomorrow before noon."

    with grpc.insecure_channel(service.grpc_endpoint) as channel:
        stub = pb_grpc.SessionServiceStub(channel)
        listed = stub.ListSessions(pb.ListSessionsRequest()).sessions
        got = next(s for s in listed if s.id == "fig-1").conversation
        assert got.message_count == 4 and got.first_user_message == "Where is my parcel?"
        assert got.HasField("response_latency_ms") and not got.HasField("time_to_first_token_ms")

    assert get(service, "/v1/sessions/fig-1", 200) and _delete(service, "fig-1")
    assert not client.exists(key)  # deleted with the session
    client.close()


def _delete(service, session_id: str) -> bool:
    import urllib.request

    request = urllib.request.Request(f"{service.http_url}/v1/sessions/{session_id}", method="DELETE")
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.status in (200, 204)


def test_q_finds_the_text_of_messages_and_says_partial_beyond_the_budget(service, monkeypatch):
    post(service, _conversation("q-1", "Please cancel my subscription", "Done, it is cancelled.", 3))
    post(service, _conversation("q-2", "What is the weather?", "Sunny.", 4))
    body = get(service, "/v1/sessions?q=SUBSCRIPTION")
    assert [s["id"] for s in body["data"]] == ["q-1"] and body["partial"] is False
    assert [s["id"] for s in get(service, "/v1/sessions?q=sunny")["data"]] == ["q-2"]
    assert get(service, "/v1/sessions?q=nowhere-said")["data"] == []

    # figures not cached and none may be computed: the candidates cannot be examined
    client = redis.Redis.from_url(service.redis_url)
    for session_id in ("q-1", "q-2"):
        client.delete(service.store.keys.conversation(session_id))
    client.close()
    monkeypatch.setattr(FigureCache, "COMPUTE_BUDGET", 0)
    body = get(service, "/v1/sessions?q=subscription")
    assert body["data"] == [] and body["partial"] is True
    assert all(s["conversation"] is None for s in get(service, "/v1/sessions")["data"])
