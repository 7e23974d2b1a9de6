"""Each message once across a session's model calls and a thread's sessions; system prompts
where they change; agents and handoffs; paging and bounds; traces with only inputs/outputs."""

from __future__ import annotations

import pytest

from otel_sessions.exporter.lookup import transcript
from otel_sessions.exporter.lookup.transcript import SessionContent, session_transcript, thread_transcript
from tests.conversation.builders import Spans, genai_message, summary


def _chat(spans: Spans, n: int, start: float, inputs: list, outputs: list, system: str | None = None,
          parent: int | None = None, **attrs) -> None:
    if system is not None:
        attrs["gen_ai__system_instructions"] = [{"type": "text", "content": system}]
    spans.add(n, start, start + 1, parent=parent, name="chat", gen_ai__input__messages=inputs,
              gen_ai__output__messages=outputs, **attrs)


def _texts(messages) -> list[tuple[str, str]]:
    return [(role, text) for role, text, _calls, _id in summary(messages)]


def test_a_repeated_message_is_kept_and_a_resent_history_is_not():
    u, a = genai_message("user", "yes"), genai_message("assistant", "ok")
    spans = Spans()
    _chat(spans, 1, 0, [u], [a])
    _chat(spans, 2, 10, [u, a, u], [a])
    resent = genai_message("assistant", "  ok\n")  # the same message (whitespace is no difference)
    _chat(spans, 3, 20, [u, a, u, resent, u], [a])
    messages = session_transcript("s", spans.data).to_json()["data"]
    assert _texts(messages) == [("user", "yes"), ("assistant", "ok")] * 3


def test_a_thread_shows_each_message_once_across_its_sessions():
    u1, a1 = genai_message("user", "Hi"), genai_message("assistant", "Hello!")
    u2, a2 = genai_message("user", "Refund my order"), genai_message("assistant", "Done.")
    first, second = Spans(), Spans()
    _chat(first, 1, 0, [u1], [a1], system="S")
    _chat(second, 2, 100, [u1, a1, u2], [a2], system="S", trace=bytes(15) + b"\x02")  # history of session 1
    sessions = [SessionContent("sess-1", first.data), SessionContent("sess-2", second.data)]
    messages = thread_transcript(sessions).to_json()["data"]
    assert _texts(messages) == [("system", "S"), ("user", "Hi"), ("assistant", "Hello!"),
                                ("user", "Refund my order"), ("assistant", "Done.")]
    assert [m["session_id"] for m in messages] == ["sess-1"] * 3 + ["sess-2"] * 2
    alone = session_transcript("sess-2", second.data).to_json()["data"]  # the session alone shows its history
    assert len(alone) == 5 and {m["session_id"] for m in alone} == {"sess-2"}


def test_a_changed_system_prompt_is_shown_where_it_changes():
    u1, a1 = genai_message("user", "one"), genai_message("assistant", "1")
    u2, a2 = genai_message("user", "two"), genai_message("assistant", "2")
    u3, a3 = genai_message("user", "three"), genai_message("assistant", "3")
    spans = Spans()
    _chat(spans, 1, 0, [u1], [a1], system="Be brief.")
    _chat(spans, 2, 10, [u1, a1, u2], [a2], system="Be brief.")
    _chat(spans, 3, 20, [u1, a1, u2, a2, u3], [a3], system="Be thorough.")
    _chat(spans, 4, 30, [u1, a1, u2, a2, u3, a3, u1], [a1], system="Be brief.")
    assert _texts(session_transcript("s", spans.data).to_json()["data"]) == [
        ("system", "Be brief."), ("user", "one"), ("assistant", "1"), ("user", "two"), ("assistant", "2"),
        ("system", "Be thorough."), ("user", "three"), ("assistant", "3"),
        ("system", "Be brief."), ("user", "one"), ("assistant", "1")]


def test_agents_come_from_the_nearest_ancestor_and_handoffs_are_marked():
    spans = Spans()
    spans.add(1, 0, 100, name="invoke_agent router", gen_ai__agent__name="router")
    spans.add(2, 1, 50, parent=1, name="step")  # no agent name: the router's
    u, a = genai_message("user", "I was charged twice"), genai_message("assistant", "Passing you to billing.")
    _chat(spans, 3, 2, [u], [a], system="Route the user.", parent=2)
    spans.add(4, 60, 100, parent=1, name="invoke_agent billing", gen_ai__agent__name="billing")
    b = genai_message("assistant", "Refunded.")
    _chat(spans, 5, 61, [u, a], [b], system="You handle billing.", parent=4)
    messages = session_transcript("s", spans.data).to_json()["data"]
    assert [(m["role"], m["agent"], m["handoff"]) for m in messages] == [
        ("system", "router", False), ("user", "router", False), ("assistant", "router", False),
        ("system", "billing", True), ("assistant", "billing", False)]


def test_system_prompts_are_tracked_per_agent():
    spans = Spans()
    spans.add(1, 0, 10, name="a", gen_ai__agent__name="a")
    spans.add(2, 20, 30, name="b", gen_ai__agent__name="b")
    spans.add(3, 40, 50, name="a", gen_ai__agent__name="a")
    _chat(spans, 11, 1, [genai_message("user", "x")], [genai_message("assistant", "1")], system="A", parent=1)
    _chat(spans, 12, 21, [genai_message("user", "y")], [genai_message("assistant", "2")], system="B", parent=2)
    _chat(spans, 13, 41, [genai_message("user", "z")], [genai_message("assistant", "3")], system="A", parent=3)
    roles = [(m["role"], m["agent"]) for m in session_transcript("s", spans.data).to_json()["data"]]
    assert roles.count(("system", "a")) == 1 and roles.count(("system", "b")) == 1


def _long_session(turns: int) -> Spans:
    spans = Spans()
    history: list = []
    for i in range(turns):
        history.append(genai_message("user", f"question {i}"))
        answer = genai_message("assistant", f"answer {i}")
        _chat(spans, i + 1, i * 10, list(history), [answer])
        history.append(answer)
    return spans


def test_paging_limit_offset_and_truncated():
    spans = _long_session(10)  # 20 messages
    page = session_transcript("s", spans.data, limit=6, offset=0).to_json()
    assert len(page["data"]) == 6 and page["truncated"] is True and page["limit"] == 6
    rest = session_transcript("s", spans.data, limit=6, offset=18).to_json()
    assert [m["content"][0]["text"] for m in rest["data"]] == ["question 9", "answer 9"]
    assert rest["truncated"] is False
    exact = session_transcript("s", spans.data, limit=20).to_json()
    assert len(exact["data"]) == 20 and exact["truncated"] is False
    assert session_transcript("s", spans.data, limit=0).to_json() == {
        "data": [], "limit": 0, "offset": 0, "truncated": True}


def test_work_is_bounded(monkeypatch):
    monkeypatch.setattr(transcript, "MAX_MESSAGES", 8)
    page = session_transcript("s", _long_session(10).data, limit=100).to_json()
    assert len(page["data"]) == 8 and page["truncated"] is True


def test_a_trace_without_model_messages_shows_its_outermost_input_and_output():
    spans = Spans()
    spans.add(1, 0, 100, name="agent", openinference__span__kind="AGENT", input__value="What is 2+2?",
              output__value="4")
    spans.add(2, 1, 99, parent=1, name="chain", openinference__span__kind="CHAIN", input__value="inner",
              output__value="inner out")  # inside the agent: not shown
    other = bytes(15) + b"\x07"
    spans.add(3, 200, 300, trace=other, name="root", mlflow__spanType='"AGENT"',
              mlflow__spanInputs={"query": "And 3+3?"}, mlflow__spanOutputs='"6"')
    messages = session_transcript("s", spans.data).to_json()["data"]
    assert _texts(messages) == [("user", "What is 2+2?"), ("assistant", "4"), ("user", "And 3+3?"),
                                ("assistant", "6")]
    assert {m["source"] for m in messages} == {"io"}


def test_inputs_and_outputs_are_not_shown_in_a_trace_with_model_messages():
    spans = Spans()
    spans.add(1, 0, 100, name="agent", langfuse__observation__type="agent",
              langfuse__observation__input='"What is 2+2?"', langfuse__observation__output='"4"')
    _chat(spans, 2, 1, [genai_message("user", "What is 2+2?")], [genai_message("assistant", "4")], parent=1)
    messages = session_transcript("s", spans.data).to_json()["data"]
    assert [m["source"] for m in messages] == ["gen_ai", "gen_ai"]


def test_media_parts():
    content = [{"type": "text", "text": "What is this?"},
               {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
               {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg"}}]
    spans = Spans()
    _chat(spans, 1, 0, [{"role": "user", "parts": [
        {"type": "text", "content": "And these?"},
        {"type": "blob", "modality": "audio", "mime_type": "audio/wav", "content": "UklGRg=="},
        {"type": "uri", "modality": "image", "mime_type": None, "uri": "https://example.com/dog.png"},
        {"type": "file", "modality": "document", "mime_type": "application/pdf", "file_id": "file-1"},
        {"type": "server_tool_call", "name": "web_search", "server_tool_call": {"query": "x"}}]}],
          [genai_message("assistant", "A dog.")])
    spans.add(2, 10, 11, name="oai", langfuse__observation__type="generation",
              langfuse__observation__input=[{"role": "user", "content": content}],
              langfuse__observation__output={"role": "assistant", "content": "A cat."})
    messages = session_transcript("s", spans.data).to_json()["data"]
    assert messages[0]["content"] == [
        {"type": "text", "text": "And these?"},
        {"type": "audio", "mime_type": "audio/wav", "data": "UklGRg=="},
        {"type": "image", "mime_type": None, "uri": "https://example.com/dog.png"},
        {"type": "document", "mime_type": "application/pdf", "file_id": "file-1"},
        {"type": "server_tool_call", "name": "web_search", "server_tool_call": {"query": "x"}}]
    assert messages[2]["content"] == [
        {"type": "text", "text": "What is this?"},
        {"type": "image", "mime_type": "image/png", "data": "iVBORw0KGgo="},
        {"type": "image", "mime_type": None, "uri": "https://example.com/cat.jpg"}]


def test_large_inline_data_is_left_out():
    big = "A" * (70_000)
    spans = Spans()
    _chat(spans, 1, 0, [{"role": "user", "parts": [{"type": "blob", "modality": "image", "mime_type": "image/png",
                                                     "content": big}]}], [])
    part = session_transcript("s", spans.data).to_json()["data"][0]["content"][0]
    assert part == {"type": "image", "mime_type": "image/png", "size": 70_000}


@pytest.mark.parametrize("limit", [1, 3])
def test_thread_builder_stops_reading_sessions_once_the_page_is_full(limit):
    read = []

    def sessions():
        for i in range(5):
            read.append(i)
            spans = Spans()
            _chat(spans, 1, 0, [genai_message("user", f"q{i}")], [genai_message("assistant", f"a{i}")])
            yield SessionContent(f"s{i}", spans.data)

    page = thread_transcript(sessions(), limit=limit).to_json()
    assert page["truncated"] is True and len(page["data"]) == limit
    assert len(read) <= limit // 2 + 1
