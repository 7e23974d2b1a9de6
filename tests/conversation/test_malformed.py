"""Malformed or truncated content never fails the answer: it is shown as raw text (``raw: true``)
or skipped, and the rest of the conversation is still read."""

from __future__ import annotations

import json

from otel_sessions.exporter.lookup.transcript import session_transcript
from tests.conversation.builders import Raw, Spans, genai_message, log_record, summary


def _good(spans: Spans, n: int, start: float) -> None:
    spans.add(n, start, start + 1, name="chat", gen_ai__input__messages=[genai_message("user", f"fine {n}")],
              gen_ai__output__messages=[genai_message("assistant", f"ok {n}")])


def test_truncated_json_is_shown_raw():
    full = json.dumps([genai_message("user", "A long question that the exporter cut")])
    spans = Spans()
    _good(spans, 1, 0)
    spans.add(2, 10, 11, name="chat", gen_ai__input__messages=Raw(full[:30]),
              gen_ai__output__messages=Raw('[{"role": "assistant", "parts": [{"type": "text", "content": "cut'))
    _good(spans, 3, 20)
    messages = session_transcript("s", spans.data).to_json()["data"]
    assert [(m["role"], m["raw"]) for m in messages] == [("user", False), ("assistant", False), ("user", True),
                                                          ("assistant", True), ("user", False), ("assistant", False)]
    assert messages[2]["content"] == [{"type": "text", "text": full[:30]}]


def test_odd_shapes_do_not_fail_the_answer():
    spans = Spans()
    odd_values = [
        Raw(42), Raw(True), Raw(b"\xff\x00"), Raw([1, [2, {"x": None}]]), "null", '"just text"', "[1, 2, 3]",
        '{"role": 5, "parts": "x"}', '[{"role": "user", "parts": [null, 3, {"type": 7}]}]',
        '[{"role": "assistant", "tool_calls": "nope", "content": {"a": [1]}}]',
        '[{"role": "user", "parts": [{"type": "tool_call", "arguments": "{not json"}]}]',
        '[{"role": "tool", "parts": [{"type": "tool_call_response", "response": {"deep": [[[]]]}}]}]',
        "[" * 100_000 + "]" * 100_000,  # deeper than the JSON parser goes
        json.dumps({"choices": [None, {"message": "x"}, {"text": 5}]}),
    ]
    for n, value in enumerate(odd_values, start=1):
        spans.add(n, n * 10, n * 10 + 1, name="chat", gen_ai__input__messages=value, gen_ai__output__messages=value,
                  gen_ai__system_instructions=value)
    spans.add(500, 5000, 5001, name="oi", openinference__span__kind="LLM", **{
        "llm__input_messages__0__message__role": "user",
        "llm__input_messages__0__message__tool_calls": "not a list",
        "llm__input_messages__x__message__role": "user",
        "llm__input_messages__1__message__contents__0__message_content": "leaf where a node belongs",
        "llm__input_messages__1__message__contents__0__message_content__type": "image",
        "llm__output_messages__0__message__content": Raw(["a", "list"]),
    })
    spans.add(501, 6000, 6001, name="tl", gen_ai__prompt__0__content="[{broken", gen_ai__prompt__0__role=Raw(3),
              gen_ai__completion__0__tool_calls__0__name=Raw({"x": 1}))
    spans.add(502, 7000, 7001, name="vercel", ai__prompt__messages="{oops", ai__response__toolCalls="[{",
              ai__response__text=Raw(12))
    spans.add(503, 8000, 8001, name="mlflow", mlflow__spanType='"CHAT_MODEL"', mlflow__spanInputs="{",
              mlflow__spanOutputs=Raw([{}]), mlflow__chat__messages="nope")
    spans.add(504, 8500, 8501, name="tool", gen_ai__tool__call__id="c1", gen_ai__tool__call__result="{bad")
    spans.add(505, 8600, 8601, name="events", events=[("gen_ai.choice", {"message": "{bad json", "index": "x"}),
                                                     ("gen_ai.user.message", {"gen_ai.event.content": "[1"})])
    _good(spans, 600, 9000)
    records = [log_record("gen_ai.user.message", [1, 2], at_ms=9500),
               log_record("gen_ai.choice", "text body", at_ms=9501),
               log_record("gen_ai.client.inference.operation.details", at_ms=9502, gen_ai__input__messages="{")]
    body = session_transcript("s", spans.data, logs=records).to_json()
    json.dumps(body)  # JSON all the way down
    got = summary(body["data"])
    assert ("user", "fine 600", (), None) in got and ("assistant", "ok 600", (), None) in got
    raw = [m for m in body["data"] if m["raw"]]
    assert {m["source"] for m in raw} >= {"gen_ai", "gen_ai.events", "vercel.ai", "mlflow"}
    assert all(m["content"][0]["type"] == "text" for m in raw)


def test_a_session_without_messages_has_an_empty_transcript():
    spans = Spans()
    spans.add(1, 0, 1, name="GET /health", http__request__method="GET")
    assert session_transcript("s", spans.data).to_json() == {"data": [], "limit": 500, "offset": 0,
                                                            "truncated": False}


def test_content_not_captured_shows_the_messages_empty():
    """GenAI events without a body (content capture off): the turns are there, their text is not."""
    spans = Spans()
    spans.add(1, 0, 1, name="chat")
    records = [log_record("gen_ai.user.message", at_ms=0, span=1),
               log_record("gen_ai.choice", {"index": 0, "finish_reason": "stop"}, at_ms=1, span=1)]
    messages = session_transcript("s", spans.data, logs=records).to_json()["data"]
    assert [(m["role"], m["content"], m["finish_reason"]) for m in messages] == [
        ("user", [], None), ("assistant", [], "stop")]
