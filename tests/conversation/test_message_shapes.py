"""messages.py: the message JSON shapes of providers and frameworks, read into one shape."""

from __future__ import annotations

import pytest

from otel_sessions.exporter.lookup.messages import messages_from_value


def _plain(value, role="user"):
    return [(m.role, m.text(), [(c["id"], c["name"], c["arguments"]) for c in m.tool_calls], m.tool_call_id)
            for m in messages_from_value(value, role)]


def test_anthropic_tool_use_and_a_tool_result_inside_a_user_message():
    messages = [
        {"role": "user", "content": "Weather?"},
        {"role": "assistant", "content": [{"type": "text", "text": "Let me check."},
                                          {"type": "tool_use", "id": "toolu_1", "name": "weather",
                                           "input": {"city": "Paris"}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1",
                                      "content": [{"type": "text", "text": "sunny"}]},
                                     {"type": "text", "text": "Thanks"}]},
    ]
    assert _plain(messages) == [
        ("user", "Weather?", [], None),
        ("assistant", "Let me check.", [("toolu_1", "weather", {"city": "Paris"})], None),
        ("user", "Thanks", [], None),
        ("tool", "sunny", [], "toolu_1"),
    ]


def test_gemini_contents_and_response():
    contents = [{"role": "user", "parts": [{"text": "Weather?"}]},
                {"role": "model", "parts": [{"functionCall": {"name": "weather", "args": {"city": "Paris"}}}]},
                {"role": "function", "parts": [{"functionResponse": {"name": "weather",
                                                                     "response": {"sky": "sunny"}}}]}]
    assert _plain(contents) == [("user", "Weather?", [], None),
                                ("assistant", "", [(None, "weather", {"city": "Paris"})], None),
                                ("tool", '{"sky":"sunny"}', [], "weather")]
    response = {"candidates": [{"content": {"role": "model", "parts": [{"text": "Sunny."}]}, "finishReason": "STOP"}]}
    [message] = messages_from_value(response, "assistant")
    assert (message.role, message.text(), message.finish_reason) == ("assistant", "Sunny.", "STOP")


def test_openai_function_call_responses_api_and_several_choices():
    legacy = {"role": "assistant", "content": None, "function_call": {"name": "f", "arguments": '{"a": 1}'}}
    assert _plain([legacy]) == [("assistant", "", [(None, "f", {"a": 1})], None)]
    responses = {"output": [{"type": "reasoning", "summary": []},
                            {"type": "function_call", "call_id": "fc_1", "name": "f", "arguments": "{}"},
                            {"type": "message", "role": "assistant",
                             "content": [{"type": "output_text", "text": "Done"}]}]}
    assert _plain(responses, "assistant") == [("assistant", "", [("fc_1", "f", {})], None),
                                              ("assistant", "Done", [], None)]
    items = [{"role": "user", "content": [{"type": "input_text", "text": "Hi"}]},
             {"type": "function_call_output", "call_id": "fc_1", "output": "42"}]
    assert _plain(items) == [("user", "Hi", [], None), ("tool", "42", [], "fc_1")]
    choices = {"choices": [{"message": {"role": "assistant", "content": "a"}, "finish_reason": "stop"},
                           {"message": {"role": "assistant", "content": "b"}, "finish_reason": "length"}]}
    assert [(m.text(), m.finish_reason) for m in messages_from_value(choices, "assistant")] == [
        ("a", "stop"), ("b", "length")]


def test_langchain_message_dicts():
    serialized = {"lc": 1, "type": "constructor", "id": ["langchain", "schema", "messages", "HumanMessage"],
                  "kwargs": {"content": "Hi"}}
    typed = [{"type": "ai", "content": "Hello"}, {"type": "human", "data": {"content": "Bye"}}]
    assert _plain([serialized, *typed]) == [("user", "Hi", [], None), ("assistant", "Hello", [], None),
                                            ("user", "Bye", [], None)]


@pytest.mark.parametrize(("role", "expected"), [("developer", ("system", None)), ("human", ("user", None)),
                                                ("ai", ("assistant", None)), ("model", ("assistant", None)),
                                                ("function", ("tool", None)), ("critic", ("user", "critic"))])
def test_roles(role, expected):
    [message] = messages_from_value([{"role": role, "content": "x"}], "user")
    assert (message.role, message.name) == expected


def test_vercel_v5_parts_and_a_prompt_with_system():
    value = {"system": "Be nice.", "prompt": "Hello"}
    assert _plain(value) == [("system", "Be nice.", [], None), ("user", "Hello", [], None)]
    messages = [{"role": "assistant", "content": [{"type": "tool-call", "toolCallId": "c1", "toolName": "t",
                                                   "input": {"q": 1}}]},
                {"role": "tool", "content": [{"type": "tool-result", "toolCallId": "c1", "toolName": "t",
                                              "output": {"type": "json", "value": {"r": 2}}},
                                             {"type": "tool-result", "toolCallId": "c2", "toolName": "t",
                                              "output": {"type": "text", "value": "ok"}}]},
                {"role": "user", "content": [{"type": "file", "data": "JVBERi0=", "mediaType": "application/pdf"},
                                             {"type": "image", "image": "https://x/y.png"}]}]
    out = messages_from_value(messages, "user")
    assert [(m.role, m.tool_call_id, m.text()) for m in out] == [
        ("assistant", None, ""), ("tool", "c1", '{"r":2}'), ("tool", "c2", "ok"),
        ("user", None, "<document:> <image:https://x/y.png>")]
    assert out[3].content[0] == {"type": "document", "mime_type": "application/pdf", "data": "JVBERi0="}
