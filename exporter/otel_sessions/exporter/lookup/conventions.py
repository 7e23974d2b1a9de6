"""What one span (or one GenAI event) says was sent to and answered by a model.

:func:`span_exchange` reads a span's attributes (as plain values, ``otlp_values.py``) and its
span events, and returns an :class:`Exchange`: the messages sent (``inputs``) and the
messages answered (``outputs``). Conventions read, first one with messages wins (inputs and
outputs apart, so one source never doubles another that records the same call):

1. GenAI semantic conventions: ``gen_ai.system_instructions``, ``gen_ai.input.messages``,
   ``gen_ai.output.messages`` (JSON text, or structured values);
2. GenAI events recorded as span events: ``gen_ai.system.message``, ``gen_ai.user.message``,
   ``gen_ai.assistant.message``, ``gen_ai.tool.message``, ``gen_ai.choice``,
   ``gen_ai.client.inference.operation.details`` (and the older ``gen_ai.content.prompt`` /
   ``gen_ai.content.completion`` with ``gen_ai.prompt`` / ``gen_ai.completion``);
3. OpenInference (``flat_messages.py``): ``llm.input_messages.N.message.*`` / ``llm.output_messages.N.message.*``
   (``role``, ``content``, ``contents.M.message_content.*``, ``tool_calls.K.tool_call.*``,
   ``tool_call_id``, ``name``);
4. Traceloop / OpenLLMetry: ``gen_ai.prompt.N.*`` / ``gen_ai.completion.N.*`` (``role``,
   ``content``, ``tool_call_id``, ``tool_calls.K.{id,name,arguments}``, ``finish_reason``);
5. Vercel AI SDK: ``ai.prompt.messages`` (else ``ai.prompt``), ``ai.response.text``,
   ``ai.response.toolCalls``, ``ai.response.object``, ``ai.response.finishReason``;
6. MLflow: ``mlflow.chat.messages``, ``mlflow.spanInputs`` / ``mlflow.spanOutputs``;
7. Langfuse: ``langfuse.observation.input`` / ``langfuse.observation.output``;
8. OpenInference ``input.value`` / ``output.value`` (JSON when ``*.mime_type`` is
   ``application/json``, else text);
9. tool spans: ``gen_ai.tool.call.result`` / ``ai.toolCall.result`` with their call id, as a
   tool message.

A span is *message level* (:data:`MESSAGE`) when it records a model call's messages (the
sources above; 6 to 8 only on model-call spans: ``mlflow.spanType`` ``CHAT_MODEL`` / ``LLM``,
``langfuse.observation.type`` ``generation``, ``openinference.span.kind`` ``LLM``), and *input/
output level* (:data:`IO`) when it only has a generic input and output (an agent or chain
span of 6 to 8). Malformed content (JSON that does not parse, a shape that cannot be read)
never raises: it becomes a text message flagged ``raw``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from otel_sessions.exporter.lookup.flat_messages import OI_IN, OI_OUT, TL_IN, TL_OUT, openinference, traceloop
from otel_sessions.exporter.lookup.history import History, HistoryCache
from otel_sessions.exporter.lookup.messages import (
    REDACTED,
    Message,
    load_json,
    messages_from_value,
    parts_from_value,
    redacted_message,
    text_message,
)
from otel_sessions.processor import attributes as attr

__all__ = ["Exchange", "MESSAGE", "IO", "GENAI_EVENTS", "LEVEL_KEYS", "span_level", "span_exchange", "event_messages",
           "span_model", "span_usage", "span_agent"]

log = logging.getLogger(__name__)

MESSAGE, IO = 0, 1

_INPUT, _OUTPUT, _SYSTEM = "gen_ai.input.messages", "gen_ai.output.messages", "gen_ai.system_instructions"
_EVENT_ROLES = {"gen_ai.system.message": "system", "gen_ai.user.message": "user",
                "gen_ai.assistant.message": "assistant", "gen_ai.tool.message": "tool"}
_CHOICE, _DETAILS = "gen_ai.choice", "gen_ai.client.inference.operation.details"
_OLD_PROMPT, _OLD_COMPLETION = "gen_ai.content.prompt", "gen_ai.content.completion"
#: Names of the GenAI events read (span events or log records).
GENAI_EVENTS = frozenset({*_EVENT_ROLES, _CHOICE, _DETAILS, _OLD_PROMPT, _OLD_COMPLETION})
_MESSAGE_KEYS = frozenset({_INPUT, _OUTPUT, _SYSTEM, "ai.prompt.messages", "ai.prompt", "ai.response.text",
                           "ai.response.toolCalls", "ai.response.object", "mlflow.chat.messages",
                           "gen_ai.tool.call.result", "ai.toolCall.result"})
_IO_KEYS = frozenset({"input.value", "output.value", "mlflow.spanInputs", "mlflow.spanOutputs",
                      "langfuse.observation.input", "langfuse.observation.output"})
_MODEL_KEYS = (*attr.MODEL, "ai.response.model", "ai.model.id", "langfuse.observation.model.name")
_INPUT_TOKENS = (*attr.INPUT_TOKENS, "ai.usage.inputTokens", "ai.usage.promptTokens")
_OUTPUT_TOKENS = (*attr.OUTPUT_TOKENS, "ai.usage.outputTokens", "ai.usage.completionTokens")
_AGENT_KEYS = (attr.AGENT_NAME, "agent.name")
#: Attributes whose values :func:`span_level` and :func:`span_agent` read (of the others, only
#: the keys).
LEVEL_KEYS = frozenset({*_AGENT_KEYS, attr.OPENINFERENCE_SPAN_KIND, "mlflow.spanType", "langfuse.observation.type"})
_EVENT_META = frozenset({"gen_ai.system", "gen_ai.provider.name", "event.name", "gen_ai.event.content"})
#: The history cache of the :func:`span_exchange` call being run (None outside one).
_HISTORY: ContextVar[HistoryCache | None] = ContextVar("history", default=None)


@dataclass
class Exchange:
    """What one model call (or one input/output span) sent and answered, and where it was read."""

    inputs: list[Message] = field(default_factory=list)
    outputs: list[Message] = field(default_factory=list)
    source: str = ""
    #: leading inputs that an earlier call of the transcript sent too (``history.py``), and
    #: the kind counts over them
    resent: int = 0
    resent_counts: dict | None = None


# --- span facts --------------------------------------------------------------------------
def _first(attrs: dict[str, Any], keys: Iterable[str]) -> Any:
    return next((attrs[k] for k in keys if k in attrs), None)


def span_model(attrs: dict[str, Any]) -> str | None:
    value = _first(attrs, _MODEL_KEYS)
    return str(value) if value not in (None, "") else None


def span_usage(attrs: dict[str, Any]) -> dict[str, int] | None:
    """``{"input_tokens", "output_tokens"}`` of a model call, None when it reports neither."""
    tin, tout = _first(attrs, _INPUT_TOKENS), _first(attrs, _OUTPUT_TOKENS)
    if tin is None and tout is None:
        return None
    return {"input_tokens": _count(tin), "output_tokens": _count(tout)}


def _count(value: Any) -> int:
    try:
        number = int(float(value))
    except (TypeError, ValueError, OverflowError):
        return 0
    return number if 0 <= number < 2**53 else 0


def span_agent(attrs: dict[str, Any]) -> str | None:
    value = _first(attrs, _AGENT_KEYS)
    return str(value) if value not in (None, "") else None


def _mlflow_type(attrs: dict[str, Any]) -> str:
    value, _ok = load_json(attrs.get("mlflow.spanType", ""))
    return str(value).upper()


def _is_traceloop(key: str) -> bool:
    """``gen_ai.prompt.N.*`` or ``gen_ai.completion.N.*`` (not ``gen_ai.prompt.name`` and the like)."""
    for prefix in (TL_IN, TL_OUT):
        if key.startswith(prefix):
            return key[len(prefix):len(prefix) + 1].isdigit()
    return False


def span_level(attrs: dict[str, Any], event_names: Iterable[str] = ()) -> int | None:
    """:data:`MESSAGE`, :data:`IO` or None (no content), from the attribute keys and the values
    of :data:`LEVEL_KEYS`."""
    for key in attrs:
        if key in _MESSAGE_KEYS or key.startswith((OI_IN, OI_OUT)) or _is_traceloop(key):
            return MESSAGE
    if any(name in GENAI_EVENTS for name in event_names):
        return MESSAGE
    if not any(key in attrs for key in _IO_KEYS):
        return None
    if str(attrs.get(attr.OPENINFERENCE_SPAN_KIND, "")).upper() == "LLM" and "input.value" in attrs:
        return MESSAGE
    if _mlflow_type(attrs) in ("CHAT_MODEL", "LLM") and "mlflow.spanInputs" in attrs:
        return MESSAGE
    if str(attrs.get("langfuse.observation.type", "")).lower() == "generation":
        return MESSAGE
    return IO


# --- parsing helpers ---------------------------------------------------------------------
def _parse(value: Any, default_role: str, *, text_ok: bool = False, history: str | None = None) -> list[Message]:
    """Messages of an attribute holding JSON (or structured values). Text that does not parse
    is a raw message, unless ``text_ok`` and it does not look like JSON (plain text is allowed).
    ``history``: the attribute holds a re-sent history (an array of messages), parsed through
    the current :class:`HistoryCache`."""
    if value == REDACTED:
        return [redacted_message(default_role)]
    cache = _HISTORY.get() if history is not None and isinstance(value, str) else None
    if cache is not None:
        found = cache.parse(history, value, default_role)  # type: ignore[arg-type]
        if found is not None:
            return found
    parsed, ok = load_json(value)
    if not ok:
        looks_json = value.lstrip()[:1] in ("[", "{")
        return [text_message(default_role, value, raw=looks_json or not text_ok)]
    try:
        return messages_from_value(parsed, default_role)
    except Exception:  # an odd shape: shown as it came
        log.debug("unreadable message value", exc_info=True)
        return [text_message(default_role, value if isinstance(value, str) else str(value), raw=True)]


def _io(value: Any, default_role: str) -> list[Message]:
    """A generic input or output: ``{"only key": "text"}`` reads as the text."""
    parsed, ok = load_json(value)
    if ok and isinstance(parsed, dict) and len(parsed) == 1:
        (inner,) = parsed.values()
        if isinstance(inner, str):
            return [text_message(default_role, inner)] if inner else []
    return _parse(value, default_role, text_ok=True)


# --- conventions -------------------------------------------------------------------------
def _system(value: Any) -> list[Message]:
    """``gen_ai.system_instructions`` (an array of parts) as a system message; the same text
    again is the same message (read once per transcript)."""
    cache = _HISTORY.get() if isinstance(value, str) else None
    known = cache.same(_SYSTEM, value) if cache is not None else None
    if known is not None:
        return known
    parsed, ok = load_json(value)
    if ok and isinstance(parsed, (list, dict)):
        parts, _calls, _results = parts_from_value(parsed)
        found = [Message(role="system", content=parts)]
    else:
        found = _parse(value, "system", text_ok=True)
    if cache is not None:
        cache.remember(_SYSTEM, value, found)
    return found


def _genai(attrs: dict[str, Any]) -> tuple[list[Message], list[Message]]:
    inputs: list[Message] = []
    if _SYSTEM in attrs:
        inputs += _system(attrs[_SYSTEM])
    if _INPUT in attrs:
        parsed = _parse(attrs[_INPUT], "user", history=_INPUT)
        if isinstance(parsed, History):  # keep what was re-sent
            system = len(inputs)
            inputs = History(inputs + parsed)
            inputs.resent, inputs.counts = system + parsed.resent, parsed.counts
        else:
            inputs += parsed
    outputs = _parse(attrs[_OUTPUT], "assistant") if _OUTPUT in attrs else []
    return inputs, outputs


def _event_body(body: Any, attrs: dict[str, Any]) -> Any:
    """An event's body; a span event has none: its body is ``gen_ai.event.content`` (JSON), else
    its attributes other than the event's metadata."""
    if body is not None:
        return body
    if "gen_ai.event.content" in attrs:
        parsed, _ok = load_json(attrs["gen_ai.event.content"])
        return parsed
    fields = {k: v for k, v in attrs.items() if k not in _EVENT_META}
    for key in ("tool_calls", "message"):
        if isinstance(fields.get(key), str):
            fields[key] = load_json(fields[key])[0]
    return fields or None


def event_messages(name: str, body: Any, attrs: dict[str, Any]) -> tuple[list[Message], list[Message]]:
    """(inputs, outputs) of one GenAI event, from a span event or a log record."""
    if name == _DETAILS:
        return _genai(attrs)
    if name == _OLD_PROMPT:
        return _parse(attrs.get("gen_ai.prompt"), "user") if "gen_ai.prompt" in attrs else [], []
    if name == _OLD_COMPLETION:
        return [], _parse(attrs.get("gen_ai.completion"), "assistant") if "gen_ai.completion" in attrs else []
    if body is None and isinstance(attrs.get("gen_ai.event.content"), str):
        parsed, ok = load_json(attrs["gen_ai.event.content"])
        if not ok:  # malformed or truncated: shown as it came
            return ([], [text_message("assistant", parsed, raw=True)]) if name == _CHOICE else \
                ([text_message(_EVENT_ROLES[name], parsed, raw=True)], [])
    body = _event_body(body, attrs)
    if name == _CHOICE:
        if isinstance(body, dict) and not isinstance(body.get("message"), dict) and "finish_reason" in body:
            body = {**body, "message": {"role": "assistant"}}  # content not captured
        return [], messages_from_value(body, "assistant") if body is not None else [Message(role="assistant")]
    role = _EVENT_ROLES[name]
    if body is None:
        return [Message(role=role)], []  # content not captured
    if isinstance(body, dict) and "role" not in body:
        body = {**body, "role": role}
    return messages_from_value(body, role), []


def _span_events(events: list[tuple[str, dict[str, Any]]]) -> tuple[list[Message], list[Message]]:
    inputs: list[Message] = []
    outputs: list[Message] = []
    for name, event_attrs in events:
        if name in GENAI_EVENTS:
            got_in, got_out = event_messages(name, None, event_attrs)
            inputs += got_in
            outputs += got_out
    return inputs, outputs


def _vercel(attrs: dict[str, Any]) -> tuple[list[Message], list[Message]]:
    inputs: list[Message] = []
    if "ai.prompt.messages" in attrs:
        inputs = _parse(attrs["ai.prompt.messages"], "user", history="ai.prompt.messages")
    elif "ai.prompt" in attrs:
        inputs = _parse(attrs["ai.prompt"], "user", text_ok=True)
    outputs: list[Message] = []
    text = attrs.get("ai.response.text")
    if text is None and "ai.response.object" in attrs:
        text = attrs["ai.response.object"]
    calls: list[dict] = []
    raw = False
    if "ai.response.toolCalls" in attrs:
        parsed, ok = load_json(attrs["ai.response.toolCalls"])
        if ok and isinstance(parsed, list):
            calls = [{"id": c.get("toolCallId"), "name": c.get("toolName"),
                      "arguments": c.get("args", c.get("input"))} for c in parsed if isinstance(c, dict)]
        else:
            text, raw = (str(text or "") + str(attrs["ai.response.toolCalls"])), True
    if text is not None or calls:
        message = messages_from_value({"role": "assistant", "content": str(text) if text else "",
                                       "tool_calls": calls}, "assistant")[0]
        message.raw = raw
        reason = attrs.get("ai.response.finishReason")
        message.finish_reason = str(reason) if reason else None
        outputs = [message]
    return inputs, outputs


def _mlflow_chat(attrs: dict[str, Any]) -> tuple[list[Message], list[Message]]:
    messages = _parse(attrs["mlflow.chat.messages"], "user", history="mlflow.chat.messages")
    cut = len(messages)
    while cut > 0 and messages[cut - 1].role == "assistant":
        cut -= 1
    return messages[:cut], messages[cut:]


def _pair(attrs: dict[str, Any], key_in: str, key_out: str) -> tuple[list[Message], list[Message]]:
    return (_parse(attrs[key_in], "user", text_ok=True, history=key_in) if key_in in attrs else [],
            _parse(attrs[key_out], "assistant", text_ok=True) if key_out in attrs else [])


def _openinference_values(attrs: dict[str, Any]) -> tuple[list[Message], list[Message]]:
    out = []
    for key, role in (("input.value", "user"), ("output.value", "assistant")):
        value = attrs.get(key)
        if value is None:
            out.append([])
        elif "json" in str(attrs.get(key.split(".")[0] + ".mime_type", "")):
            out.append(_parse(value, role, text_ok=True))
        else:
            out.append([text_message(role, str(value))] if value != "" else [])
    return out[0], out[1]


def _tool_result(attrs: dict[str, Any]) -> tuple[list[Message], list[Message]]:
    for id_key, result_key in (("gen_ai.tool.call.id", "gen_ai.tool.call.result"),
                               ("ai.toolCall.id", "ai.toolCall.result")):
        if result_key in attrs and attrs.get(id_key):
            parsed, ok = load_json(attrs[result_key])
            message = messages_from_value({"role": "tool", "content": [{"type": "tool_call_response",
                                                                        "id": str(attrs[id_key]),
                                                                        "response": parsed}]}, "tool")
            return [], message
    return [], []


def _io_level(attrs: dict[str, Any]) -> tuple[list[Message], list[Message]]:
    for key_in, key_out in (("mlflow.spanInputs", "mlflow.spanOutputs"),
                            ("langfuse.observation.input", "langfuse.observation.output"),
                            ("input.value", "output.value")):
        if key_in in attrs or key_out in attrs:
            return (_io(attrs[key_in], "user") if key_in in attrs else [],
                    _io(attrs[key_out], "assistant") if key_out in attrs else [])
    return [], []


def span_exchange(attrs: dict[str, Any], events: list[tuple[str, dict[str, Any]]], level: int,
                  history: HistoryCache | None = None) -> Exchange:
    """The :class:`Exchange` of a span of ``level`` (:func:`span_level`); ``events`` are its span
    events as (name, attributes); ``history`` parses re-sent histories once across the calls
    of one transcript."""
    token = _HISTORY.set(history)
    try:
        return _span_exchange(attrs, events, level)
    finally:
        _HISTORY.reset(token)


def _span_exchange(attrs: dict[str, Any], events: list[tuple[str, dict[str, Any]]], level: int) -> Exchange:
    if level == IO:
        return _guarded(_io_level, attrs, "io", Exchange())
    exchange = Exchange()
    sources = (
        ("gen_ai", lambda a: _genai(a) if (_INPUT in a or _OUTPUT in a or _SYSTEM in a) else ([], [])),
        ("gen_ai.events", lambda _a: _span_events(events) if events else ([], [])),
        ("openinference", lambda a: openinference(a) if any(k.startswith((OI_IN, OI_OUT)) for k in a)
         else ([], [])),
        ("traceloop", lambda a: traceloop(a) if any(_is_traceloop(k) for k in a) else ([], [])),
        ("vercel.ai", lambda a: _vercel(a) if any(k.startswith(("ai.prompt", "ai.response.")) for k in a)
         else ([], [])),
        ("mlflow", lambda a: _mlflow_chat(a) if "mlflow.chat.messages" in a else
         (_pair(a, "mlflow.spanInputs", "mlflow.spanOutputs") if _mlflow_type(a) in ("CHAT_MODEL", "LLM")
          else ([], []))),
        ("langfuse", lambda a: _pair(a, "langfuse.observation.input", "langfuse.observation.output")
         if str(a.get("langfuse.observation.type", "")).lower() == "generation" else ([], [])),
        ("openinference", lambda a: _openinference_values(a)
         if str(a.get(attr.OPENINFERENCE_SPAN_KIND, "")).upper() == "LLM" else ([], [])),
        ("tool", _tool_result),
    )
    for source, read in sources:
        got = _guarded(read, attrs, source, None)
        if got is None:
            continue
        if not exchange.inputs and got.inputs:
            exchange.inputs = got.inputs
            exchange.source = exchange.source or source
            if isinstance(got.inputs, History):
                exchange.resent, exchange.resent_counts = got.inputs.resent, got.inputs.counts
        if not exchange.outputs and got.outputs:
            exchange.outputs = got.outputs
            exchange.source = exchange.source or source
        if exchange.inputs and exchange.outputs:
            break
    return exchange


def _guarded(read, attrs: dict[str, Any], source: str, default: Exchange | None) -> Exchange | None:
    """``read(attrs)`` as an Exchange; a reader that fails shows nothing of that source (never an
    error for the whole answer)."""
    try:
        inputs, outputs = read(attrs)
    except Exception:
        log.debug("could not read %s messages", source, exc_info=True)
        return default
    return Exchange(inputs, outputs, source)
