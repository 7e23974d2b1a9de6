"""The transcript of one conversation recorded by each convention (span shapes as each
instrumentation records them): every message once, in order, tool results tied to their calls."""

from __future__ import annotations

import pytest
from opentelemetry.proto.logs.v1.logs_pb2 import LogsData

from otel_sessions.exporter.lookup.transcript import log_records, session_transcript
from tests.conversation import conversation as c
from tests.conversation.builders import TRACE, summary

SPAN_SHAPES = {
    "gen_ai JSON": lambda: c.genai_json(),
    "gen_ai JSON, system in the messages": lambda: c.genai_json(system_in_messages=True),
    "gen_ai structured values": lambda: c.genai_json(structured=True),
    "gen_ai span events": c.genai_span_events,
    "openinference": c.openinference,
    "openinference input.value/output.value": c.openinference_values,
    "traceloop": c.traceloop,
    "vercel ai": c.vercel_ai,
    "langfuse": c.langfuse,
    "mlflow": c.mlflow,
}
SOURCES = {"gen_ai JSON": "gen_ai", "gen_ai span events": "gen_ai.events", "openinference": "openinference",
           "traceloop": "traceloop", "vercel ai": "vercel.ai", "langfuse": "langfuse", "mlflow": "mlflow"}


@pytest.mark.parametrize("shape", list(SPAN_SHAPES))
def test_each_convention_gives_the_conversation_once_in_order(shape):
    body = session_transcript("sess-1", SPAN_SHAPES[shape]().data).to_json()
    messages = body["data"]
    assert summary(messages) == c.EXPECTED, shape
    assert body["truncated"] is False and body["offset"] == 0
    call = messages[2]["tool_calls"][0]
    assert call == {"id": "call_1", "name": "get_weather", "arguments": c.ARGS}
    assert all(m["session_id"] == "sess-1" and not m["raw"] for m in messages)
    assert all(m["trace_id"] == TRACE.hex() and len(m["span_id"]) == 16 for m in messages)
    if shape in SOURCES:
        assert {m["source"] for m in messages} <= {SOURCES[shape], "tool"}
    times = [m["time"] for m in messages]
    assert times == sorted(times)


@pytest.mark.parametrize("shape", ["gen_ai JSON", "gen_ai span events", "openinference", "traceloop", "vercel ai"])
def test_assistant_messages_carry_model_usage_and_finish_reason(shape):
    messages = session_transcript("s", SPAN_SHAPES[shape]().data).to_json()["data"]
    assistant = [m for m in messages if m["role"] == "assistant"]
    assert all(m["model"] and m["model"].startswith("gpt-4o") for m in assistant)
    assert all(m["usage"] == {"input_tokens": 20, "output_tokens": 5} for m in assistant)
    others = [m for m in messages if m["role"] != "assistant"]
    assert all(m["model"] is None and m["usage"] is None for m in others)
    if shape != "openinference":  # OpenInference records no finish reason per message
        assert [m["finish_reason"] for m in assistant] == ["tool_calls", "stop", "stop"]


@pytest.mark.parametrize("variant", ["linked to spans", "no span", "event.name attribute"])
def test_genai_events_as_log_records(variant):
    spans, records = c.genai_log_events(with_spans=variant != "no span",
                                        in_attribute=variant == "event.name attribute")
    messages = session_transcript("s", spans.data, logs=records).to_json()["data"]
    assert summary(messages) == c.EXPECTED
    assert messages[2]["tool_calls"][0]["arguments"] == c.ARGS
    assert {m["source"] for m in messages} == {"gen_ai.events"}
    if variant != "no span":  # the span's facts join the events' messages
        assert [m["span_id"] for m in messages[:3]] == [(1).to_bytes(8, "big").hex()] * 3
        assert messages[2]["usage"] == {"input_tokens": 20, "output_tokens": 5}
        assert messages[2]["time"] == "2024-05-01T12:34:57.000000Z"  # the call's end
    else:
        assert all(m["span_id"] is None for m in messages)
        assert messages[0]["time"] == "2024-05-01T12:34:56.000000Z"  # the record's time


def test_operation_details_log_records():
    spans, records = c.genai_details_events()
    messages = session_transcript("s", spans.data, logs=records).to_json()["data"]
    assert summary(messages) == c.EXPECTED
    data = LogsData()  # the same records as a stored LogsData
    for resource, record in records:
        data.resource_logs.add(resource=resource).scope_logs.add().log_records.append(record)
    assert session_transcript("s", spans.data, logs=log_records(data)).to_json()["data"] == messages


def test_bare_log_records_and_records_of_other_events_are_read_or_skipped():
    spans, records = c.genai_log_events()
    from tests.conversation.builders import log_record

    noise = [log_record("app.started", {"content": "not a message"}, at_ms=5),
             log_record("", "plain log line", at_ms=6)]
    bare = [record for _resource, record in records]  # LogRecord without its resource
    messages = session_transcript("s", spans.data, logs=[*noise, *bare]).to_json()["data"]
    assert summary(messages) == c.EXPECTED


def test_span_attributes_win_over_the_same_calls_events():
    """Content captured on spans and as events (``span_and_event``) is shown once."""
    spans = c.genai_json()
    _spans, records = c.genai_details_events()
    messages = session_transcript("s", spans.data, logs=records).to_json()["data"]
    assert summary(messages) == c.EXPECTED
    assert {m["source"] for m in messages} == {"gen_ai"}
