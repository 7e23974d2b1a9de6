"""One conversation, recorded the way each instrumentation records it (hand-built span shapes).

The conversation: a system prompt; "Weather in Paris?"; the model calls ``get_weather``
(``call_1``, ``{"city": "Paris"}``); the tool answers "sunny"; the model says "It is sunny in
Paris."; later "Thanks!" and "You're welcome.". Three model calls (A, B, C) re-send the
history, as every chat API does; a tool span runs between A and B.
"""

from __future__ import annotations

import json

from tests.conversation.builders import Raw, Spans, genai_message, log_record

SYSTEM = "You are a weather bot."
ARGS = {"city": "Paris"}
EXPECTED = [
    ("system", SYSTEM, (), None),
    ("user", "Weather in Paris?", (), None),
    ("assistant", "", ("call_1",), None),
    ("tool", "sunny", (), "call_1"),
    ("assistant", "It is sunny in Paris.", (), None),
    ("user", "Thanks!", (), None),
    ("assistant", "You're welcome.", (), None),
]
# (start ms, end ms) of calls A, B, C and of the tool span
TIMES = {"A": (0, 1000), "tool": (1000, 1500), "B": (2000, 3000), "C": (10_000, 11_000)}
USAGE = {"gen_ai.usage.input_tokens": 20, "gen_ai.usage.output_tokens": 5}


def _genai_history():
    u1 = genai_message("user", "Weather in Paris?")
    a1 = genai_message("assistant", calls=[("call_1", "get_weather", ARGS)], finish="tool_calls")
    t1 = genai_message("tool", result=("call_1", "sunny"))
    a2 = genai_message("assistant", "It is sunny in Paris.", finish="stop")
    u2 = genai_message("user", "Thanks!")
    a3 = genai_message("assistant", "You're welcome.", finish="stop")
    return {"A": ([u1], [a1]), "B": ([u1, a1, t1], [a2]), "C": ([u1, a1, t1, a2, u2], [a3])}


def genai_json(structured: bool = False, system_in_messages: bool = False) -> Spans:
    """GenAI semantic conventions: gen_ai.system_instructions / input / output messages."""
    spans = Spans()
    wrap = Raw if structured else (lambda v: v)
    for n, (call, (inputs, outputs)) in enumerate(_genai_history().items(), start=1):
        attrs = {"gen_ai__operation__name": "chat", "gen_ai__request__model": "gpt-4o",
                 "gen_ai__response__model": "gpt-4o-2024-08-06", **{k.replace(".", "__"): v for k, v in USAGE.items()},
                 "gen_ai__output__messages": wrap(outputs)}
        if system_in_messages:
            attrs["gen_ai__input__messages"] = wrap([genai_message("system", SYSTEM), *inputs])
        else:
            attrs["gen_ai__system_instructions"] = wrap([{"type": "text", "content": SYSTEM}])
            attrs["gen_ai__input__messages"] = wrap(inputs)
        spans.add(n, *TIMES[call], name="chat gpt-4o", **attrs)
    spans.add(9, *TIMES["tool"], name="execute_tool get_weather", gen_ai__operation__name="execute_tool",
              gen_ai__tool__name="get_weather", gen_ai__tool__call__id="call_1")
    return spans


def _openai_history():
    u1 = {"role": "user", "content": "Weather in Paris?"}
    a1 = {"role": "assistant", "content": None, "tool_calls": [
        {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": json.dumps(ARGS)}}]}
    t1 = {"role": "tool", "tool_call_id": "call_1", "content": "sunny"}
    a2 = {"role": "assistant", "content": "It is sunny in Paris."}
    u2 = {"role": "user", "content": "Thanks!"}
    a3 = {"role": "assistant", "content": "You're welcome."}
    system = {"role": "system", "content": SYSTEM}
    return {"A": ([system, u1], [a1], "tool_calls"), "B": ([system, u1, a1, t1], [a2], "stop"),
            "C": ([system, u1, a1, t1, a2, u2], [a3], "stop")}


def _event_attrs(message: dict) -> tuple[str, dict]:
    """A GenAI event (span-event form: the body's fields as attributes, nested ones as JSON)."""
    role = message["role"]
    attrs: dict = {"gen_ai.system": "openai"}
    if message.get("content") is not None:
        attrs["content"] = message["content"]
    if message.get("tool_calls"):
        attrs["tool_calls"] = json.dumps(message["tool_calls"])
    if role == "tool":
        attrs["id"] = message["tool_call_id"]
    return f"gen_ai.{role}.message", attrs


def genai_span_events() -> Spans:
    spans = Spans()
    for n, (call, (inputs, outputs, finish)) in enumerate(_openai_history().items(), start=1):
        events = [_event_attrs(m) for m in inputs]
        events += [("gen_ai.choice", {"index": 0, "finish_reason": finish, "message": json.dumps(m)}) for m in outputs]
        spans.add(n, *TIMES[call], name="chat gpt-4o", events=events, gen_ai__operation__name="chat",
                  gen_ai__request__model="gpt-4o", **{k.replace(".", "__"): v for k, v in USAGE.items()})
    return spans


def _body(message: dict) -> dict:
    """A GenAI event body as openai-v2 (semconv 1.30 events) writes it."""
    body: dict = {}
    if message.get("content") is not None:
        body["content"] = message["content"]
    if message["role"] == "assistant" and message.get("tool_calls"):
        body = {"tool_calls": message["tool_calls"]}
    if message["role"] == "tool":
        body["id"] = message["tool_call_id"]
    return body


def genai_log_events(with_spans: bool = True, in_attribute: bool = False) -> tuple[Spans, list]:
    """Model-call spans without content, and the GenAI events as log records naming them (or, with
    ``with_spans=False``, naming no span at all)."""
    spans = Spans()
    records = []
    for n, (call, (inputs, outputs, finish)) in enumerate(_openai_history().items(), start=1):
        start, end = TIMES[call]
        if with_spans:
            spans.add(n, start, end, name="chat gpt-4o", gen_ai__operation__name="chat",
                      gen_ai__request__model="gpt-4o", **{k.replace(".", "__"): v for k, v in USAGE.items()})
        link = n if with_spans else None
        for i, m in enumerate(inputs):
            records.append(log_record(f"gen_ai.{m['role']}.message", _body(m) or None, at_ms=start + i * 0.01,
                                      span=link, in_attribute=in_attribute, gen_ai__system="openai"))
        for m in outputs:
            message = {"role": "assistant", **({"content": m["content"]} if m.get("content") else {}),
                       **({"tool_calls": m["tool_calls"]} if m.get("tool_calls") else {})}
            records.append(log_record("gen_ai.choice", {"index": 0, "finish_reason": finish, "message": message},
                                      at_ms=end, span=link, in_attribute=in_attribute, gen_ai__system="openai"))
    return spans, records


def genai_details_events() -> tuple[Spans, list]:
    """``gen_ai.client.inference.operation.details`` log records (structured message attributes)."""
    spans = Spans()
    records = []
    for n, (call, (inputs, outputs)) in enumerate(_genai_history().items(), start=1):
        start, end = TIMES[call]
        spans.add(n, start, end, name="chat gpt-4o", gen_ai__operation__name="chat",
                  gen_ai__request__model="gpt-4o", **{k.replace(".", "__"): v for k, v in USAGE.items()})
        records.append(log_record("gen_ai.client.inference.operation.details", at_ms=end, span=n,
                                  gen_ai__system_instructions=[{"type": "text", "content": SYSTEM}],
                                  gen_ai__input__messages=inputs, gen_ai__output__messages=outputs))
    return spans, records


def _flattened(prefix: str, messages: list[dict], style: str) -> dict:
    """OpenInference (``style="oi"``) or Traceloop (``"tl"``) flattened message attributes."""
    out = {}
    for i, m in enumerate(messages):
        head = f"{prefix}.{i}." + ("message." if style == "oi" else "")
        out[head + "role"] = m["role"]
        if m.get("content") is not None:
            out[head + "content"] = m["content"]
        if m.get("tool_call_id"):
            out[head + "tool_call_id"] = m["tool_call_id"]
        for k, call in enumerate(m.get("tool_calls") or []):
            if style == "oi":
                call_head = f"{head}tool_calls.{k}.tool_call."
                out[call_head + "id"] = call["id"]
                out[call_head + "function.name"] = call["function"]["name"]
                out[call_head + "function.arguments"] = call["function"]["arguments"]
            else:
                call_head = f"{head}tool_calls.{k}."
                out[call_head + "id"] = call["id"]
                out[call_head + "name"] = call["function"]["name"]
                out[call_head + "arguments"] = call["function"]["arguments"]
    return out


def openinference() -> Spans:
    spans = Spans()
    for n, (call, (inputs, outputs, _finish)) in enumerate(_openai_history().items(), start=1):
        attrs = {"openinference.span.kind": "LLM", "llm.model_name": "gpt-4o", "llm.token_count.prompt": 20,
                 "llm.token_count.completion": 5, **_flattened("llm.input_messages", inputs, "oi"),
                 **_flattened("llm.output_messages", outputs, "oi")}
        spans.add(n, *TIMES[call], name="ChatCompletion", **{k.replace(".", "__"): v for k, v in attrs.items()})
    return spans


def traceloop() -> Spans:
    spans = Spans()
    for n, (call, (inputs, outputs, finish)) in enumerate(_openai_history().items(), start=1):
        attrs = {"traceloop.span.kind": "llm", "gen_ai.request.model": "gpt-4o",
                 "gen_ai.usage.prompt_tokens": 20, "gen_ai.usage.completion_tokens": 5,
                 **_flattened("gen_ai.prompt", inputs, "tl"), **_flattened("gen_ai.completion", outputs, "tl"),
                 "gen_ai.completion.0.finish_reason": finish}
        spans.add(n, *TIMES[call], name="openai.chat", **{k.replace(".", "__"): v for k, v in attrs.items()})
    return spans


def _vercel_message(m: dict) -> dict:
    if m["role"] == "assistant" and m.get("tool_calls"):
        return {"role": "assistant", "content": [
            {"type": "tool-call", "toolCallId": c["id"], "toolName": c["function"]["name"],
             "args": json.loads(c["function"]["arguments"])} for c in m["tool_calls"]]}
    if m["role"] == "tool":
        return {"role": "tool", "content": [{"type": "tool-result", "toolCallId": m["tool_call_id"],
                                             "toolName": "get_weather", "result": m["content"]}]}
    if m["role"] == "user":
        return {"role": "user", "content": [{"type": "text", "text": m["content"]}]}
    return {"role": m["role"], "content": m["content"]}


def vercel_ai() -> Spans:
    """``ai.generateText`` spans (one per user turn) around ``ai.generateText.doGenerate`` calls
    and an ``ai.toolCall`` span, as the Vercel AI SDK records them."""
    spans = Spans()
    history = _openai_history()
    outer = {1: ("A", "B"), 2: ("C",)}
    n = 10
    for turn, calls in outer.items():
        first_inputs = history[calls[0]][0]
        last_output = history[calls[-1]][1][0]
        prompt = {"system": SYSTEM, "messages": [_vercel_message(m) for m in first_inputs[1:]]}
        spans.add(turn, TIMES[calls[0]][0] - 1, TIMES[calls[-1]][1] + 1, name="ai.generateText",
                  ai__prompt=prompt, ai__response__text=last_output["content"], ai__model__id="gpt-4o")
        for call in calls:
            inputs, outputs, finish = history[call]
            out = outputs[0]
            attrs = {"ai.prompt.messages": [_vercel_message(m) for m in inputs], "ai.model.id": "gpt-4o",
                     "ai.response.finishReason": finish, "ai.usage.promptTokens": 20,
                     "ai.usage.completionTokens": 5}
            if out.get("tool_calls"):
                attrs["ai.response.toolCalls"] = [{"toolCallType": "function", "toolCallId": c["id"],
                                                   "toolName": c["function"]["name"],
                                                   "args": c["function"]["arguments"]} for c in out["tool_calls"]]
            else:
                attrs["ai.response.text"] = out["content"]
            n += 1
            spans.add(n, *TIMES[call], parent=turn, name="ai.generateText.doGenerate",
                      **{k.replace(".", "__"): v for k, v in attrs.items()})
    spans.add(99, *TIMES["tool"], parent=1, name="ai.toolCall", ai__toolCall__name="get_weather",
              ai__toolCall__id="call_1", ai__toolCall__args=json.dumps(ARGS), ai__toolCall__result='"sunny"')
    return spans


def langfuse() -> Spans:
    spans = Spans()
    for n, (call, (inputs, outputs, _finish)) in enumerate(_openai_history().items(), start=1):
        spans.add(n, *TIMES[call], name="OpenAI-generation", langfuse__observation__type="generation",
                  langfuse__observation__input=inputs, langfuse__observation__output=outputs[0],
                  langfuse__observation__model__name="gpt-4o", gen_ai__usage__input_tokens=20,
                  gen_ai__usage__output_tokens=5)
    return spans


def mlflow() -> Spans:
    spans = Spans()
    for n, (call, (inputs, outputs, finish)) in enumerate(_openai_history().items(), start=1):
        response = {"id": "chatcmpl-1", "object": "chat.completion", "model": "gpt-4o",
                    "choices": [{"index": 0, "message": outputs[0], "finish_reason": finish}]}
        spans.add(n, *TIMES[call], name="Completions", mlflow__spanType='"CHAT_MODEL"',
                  mlflow__spanInputs={"messages": inputs, "model": "gpt-4o"}, mlflow__spanOutputs=response,
                  mlflow__traceRequestId='"tr-1"')
    return spans


def openinference_values() -> Spans:
    """OpenInference LLM spans with only ``input.value`` / ``output.value`` (request and response JSON)."""
    spans = Spans()
    for n, (call, (inputs, outputs, finish)) in enumerate(_openai_history().items(), start=1):
        response = {"choices": [{"index": 0, "message": outputs[0], "finish_reason": finish}]}
        spans.add(n, *TIMES[call], name="ChatCompletion", openinference__span__kind="LLM",
                  input__value={"messages": inputs, "model": "gpt-4o"}, input__mime_type="application/json",
                  output__value=response, output__mime_type="application/json")
    return spans
