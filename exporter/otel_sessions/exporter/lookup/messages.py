"""Chat messages in one shape, from the JSON shapes instrumentations record them in.

:func:`messages_from_value` reads a parsed JSON value (a list of messages, one message, a
request or response body, or plain text) and returns :class:`Message` objects. It reads:

* the GenAI semantic conventions' message schema (``gen_ai.input.messages`` /
  ``gen_ai.output.messages``: ``{"role", "parts": [{"type": "text", "content"},
  {"type": "tool_call", "id", "name", "arguments"}, {"type": "tool_call_response", "id",
  "response"}, {"type": "blob"|"uri"|"file", "modality", "mime_type", ...},
  {"type": "reasoning", "content"}], "finish_reason"}``) and the GenAI event bodies
  (``{"content", "tool_calls", "id"}``, ``gen_ai.choice``'s ``{"message", "finish_reason"}``);
* OpenAI chat messages (``content`` as text or parts, ``tool_calls`` with ``function``,
  ``tool_call_id``), request bodies (``{"messages": [...]}``) and responses
  (``{"choices": [...]}``);
* the Vercel AI SDK (``tool-call`` / ``tool-result`` parts, ``{"system", "prompt",
  "messages"}``), Anthropic (``tool_use`` / ``tool_result``), Gemini (``parts`` with
  ``functionCall`` / ``functionResponse``, ``candidates``) and LangChain message dicts.

Roles become ``system``, ``user``, ``assistant`` or ``tool`` (``developer`` is system,
``human`` user, ``ai`` / ``model`` assistant, ``function`` tool; another role is a user
message named after it). Content becomes parts: ``{"type": "text", "text"}``,
``{"type": "reasoning", "text"}``, media ``{"type": "image"|"audio"|"video"|"document"|"file",
"mime_type", "uri" | "file_id" | "data" (base64, up to :data:`MAX_INLINE_DATA` characters,
else left out with ``"size"``)}``, or any other typed part as it came. Tool calls become
``{"id", "name", "arguments"}`` (arguments parsed when they are JSON text); each tool result
becomes a message of its own (role ``tool``, ``tool_call_id``), also when it came inside a
user message (Anthropic) or with others in one message (Vercel, GenAI).

Nothing here raises on odd input: a value of no known shape is kept as its JSON text.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Message", "messages_from_value", "parts_from_value", "load_json", "text_message", "MAX_INLINE_DATA",
           "ROLES"]

ROLES = ("system", "user", "assistant", "tool")
#: Inline media data kept in a transcript, characters of base64 at most; larger data is left
#: out (its ``size`` in characters is given).
MAX_INLINE_DATA = 65_536

_ROLE = {"system": "system", "developer": "system", "user": "user", "human": "user", "assistant": "assistant",
         "ai": "assistant", "model": "assistant", "bot": "assistant", "chatbot": "assistant", "tool": "tool",
         "function": "tool", "ipython": "tool", "tool_result": "tool"}
_LANGCHAIN = {"HumanMessage": "user", "AIMessage": "assistant", "SystemMessage": "system", "ToolMessage": "tool",
              "FunctionMessage": "tool", "ChatMessage": "user"}
_TEXT_TYPES = frozenset({"text", "input_text", "output_text"})
_REASONING_TYPES = frozenset({"reasoning", "thinking"})
_CALL_TYPES = frozenset({"tool_call", "tool-call", "tool_use", "function_call"})
_RESULT_TYPES = frozenset({"tool_call_response", "tool-result", "tool_result", "function_call_output"})
_MODALITIES = ("image", "audio", "video", "document")


@dataclass
class Message:
    """One message of a transcript (the ``Message`` JSON of interface.md, before the lookup adds
    where it came from: span, time, agent, model, usage)."""

    role: str
    content: list[dict[str, Any]] = field(default_factory=list)
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    tool_call_id: str | None = None
    name: str | None = None
    finish_reason: str | None = None
    raw: bool = False
    redacted: bool = False  # the whole recorded value was replaced by [redacted] (--redact-attributes)
    _key: tuple | None = field(default=None, repr=False, compare=False)

    def text(self) -> str:
        """The text parts joined, whitespace collapsed (what de-duplication compares)."""
        pieces = []
        for part in self.content:
            kind = part.get("type")
            if kind == "text" or kind == "reasoning":
                pieces.append(str(part.get("text", "")))
            else:
                pieces.append(f"<{kind}:{part.get('uri') or part.get('file_id') or part.get('size') or ''}>")
        return " ".join(" ".join(pieces).split())

    def key(self) -> tuple:
        """What makes two messages the same message: role, normalized content and tool ids. A
        tool result with an id is known by its id alone (sources format results differently).
        Computed once: a message is complete when it is first compared."""
        if self._key is None:
            if self.redacted and self.role == "assistant":
                # a redacted answer: its content is gone, so two calls' answers would look the same
                self._key = ("redacted", id(self))
            elif self.role == "tool" and self.tool_call_id:
                self._key = ("tool", self.tool_call_id)
            else:
                calls = tuple(c.get("id") or c.get("name") or "" for c in self.tool_calls)
                self._key = (self.role, self.text(), calls, self.tool_call_id or "")
        return self._key


def load_json(value: Any) -> tuple[Any, bool]:
    """``(parsed, True)`` for JSON text (or a value already structured), ``(text, False)`` for
    text that does not parse (truncated or malformed)."""
    if not isinstance(value, str):
        return value, True
    try:
        return json.loads(value), True
    except (ValueError, RecursionError):
        return value, False


#: What ``--redact-attributes`` puts in place of a whole attribute value (ingest/redaction.py).
REDACTED = "[redacted]"


def redacted_message(role: str) -> Message:
    """A message whose recorded value was redacted whole: one message of ``role``, text
    ``[redacted]``. An assistant's (a call's answer) is never taken for another call's answer."""
    return Message(role=role, content=[{"type": "text", "text": REDACTED}], redacted=True)


def text_message(role: str, text: str, raw: bool = False) -> Message:
    return Message(role=role, content=[{"type": "text", "text": text}] if text else [], raw=raw)


def _json_text(value: Any) -> str:
    try:
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)
    except (ValueError, TypeError, RecursionError):
        return str(value)


def _role(value: Any, default: str) -> tuple[str, str | None]:
    """(role, name): an unknown role is a user message named after the role."""
    if not isinstance(value, str) or not value:
        return default, None
    role = _ROLE.get(value.lower())
    return (role, None) if role is not None else ("user", value)


def _arguments(value: Any) -> Any:
    if isinstance(value, str):
        parsed, ok = load_json(value)
        if ok and isinstance(parsed, (dict, list)):
            return parsed
    return value


def _tool_call(raw: dict) -> dict[str, Any]:
    """An OpenAI ``{"id", "function": {"name", "arguments"}}`` or flat ``{"id", "name",
    "arguments" | "args" | "input"}`` tool call as ``{"id", "name", "arguments"}``."""
    function = raw.get("function") if isinstance(raw.get("function"), dict) else raw
    call_id = raw.get("id") or raw.get("toolCallId") or raw.get("call_id") or raw.get("tool_call_id")
    name = function.get("name") or raw.get("toolName") or raw.get("name")
    arguments = next((function[k] for k in ("arguments", "args", "input") if k in function), None)
    return {"id": str(call_id) if call_id is not None else None, "name": str(name) if name is not None else None,
            "arguments": _arguments(arguments)}


def _media_kind(modality: Any, mime_type: Any) -> str:
    if isinstance(modality, str) and modality in _MODALITIES:
        return modality
    if isinstance(mime_type, str):
        head = mime_type.split("/", 1)[0]
        if head in ("image", "audio", "video"):
            return head
        if mime_type == "application/pdf":
            return "document"
    return "file"


def _media(modality: Any, mime_type: Any, *, uri: Any = None, file_id: Any = None, data: Any = None) -> dict:
    if isinstance(uri, str) and uri.startswith("data:") and data is None:  # data:image/png;base64,...
        head, _sep, payload = uri.partition(",")
        mime_type = mime_type or head[5:].split(";", 1)[0] or None
        uri, data = None, payload
    part: dict[str, Any] = {"type": _media_kind(modality, mime_type), "mime_type": mime_type or None}
    if uri is not None:
        part["uri"] = str(uri)
    if file_id is not None:
        part["file_id"] = str(file_id)
    if data is not None:
        text = data if isinstance(data, str) else _json_text(data)
        if len(text) <= MAX_INLINE_DATA:
            part["data"] = text
        else:
            part["size"] = len(text)
    return part


def _result_content(value: Any) -> list[dict[str, Any]]:
    """A tool result (any JSON) as content parts."""
    if value is None:
        return []
    if isinstance(value, str):
        return [{"type": "text", "text": value}]
    if isinstance(value, dict) and value.get("type") in ("text", "json") and "value" in value:  # Vercel v5
        inner = value["value"]
        return [{"type": "text", "text": inner if isinstance(inner, str) else _json_text(inner)}]
    if isinstance(value, list) and value and all(isinstance(p, dict) and "type" in p for p in value):
        parts: list[dict[str, Any]] = []
        for p in value:
            kind, item = _part(p)
            if kind == "part":
                parts.append(item)
        if parts:
            return parts
    return [{"type": "text", "text": _json_text(value)}]


def _part(p: Any) -> tuple[str, Any]:
    """One content part as ``("part", part)``, ``("call", tool call)`` or ``("result", (id,
    parts))``."""
    if isinstance(p, str):
        return "part", {"type": "text", "text": p}
    if not isinstance(p, dict):
        return "part", {"type": "text", "text": _json_text(p)}
    kind = p.get("type")
    if kind in _TEXT_TYPES or (kind is None and isinstance(p.get("text"), str)):
        text = p.get("content") if isinstance(p.get("content"), str) else p.get("text")
        return "part", {"type": "text", "text": text if isinstance(text, str) else _json_text(text)}
    if kind in _REASONING_TYPES:
        text = next((p[k] for k in ("content", "thinking", "text") if isinstance(p.get(k), str)), "")
        return "part", {"type": "reasoning", "text": text}
    if kind in _CALL_TYPES:
        return "call", _tool_call(p)
    if kind in _RESULT_TYPES:
        call_id = p.get("id") or p.get("toolCallId") or p.get("tool_use_id") or p.get("call_id")
        value = next((p[k] for k in ("response", "result", "output", "content") if k in p), None)
        return "result", (str(call_id) if call_id is not None else None, _result_content(value))
    if kind is None:  # Gemini parts
        if isinstance(p.get("functionCall"), dict):
            call = p["functionCall"]
            return "call", {"id": call.get("id"), "name": call.get("name"), "arguments": _arguments(call.get("args"))}
        if isinstance(p.get("functionResponse"), dict):
            response = p["functionResponse"]
            return "result", (response.get("id") or response.get("name"), _result_content(response.get("response")))
        if isinstance(p.get("inlineData"), dict):
            blob = p["inlineData"]
            return "part", _media(None, blob.get("mimeType"), data=blob.get("data"))
        if isinstance(p.get("fileData"), dict):
            ref = p["fileData"]
            return "part", _media(None, ref.get("mimeType"), uri=ref.get("fileUri"))
        if isinstance(p.get("content"), str):
            return "part", {"type": "text", "text": p["content"]}
        return "part", {"type": "text", "text": _json_text(p)}
    mime = p.get("mime_type") or p.get("mimeType") or p.get("mediaType") or p.get("media_type")
    if kind == "blob":
        return "part", _media(p.get("modality"), mime, data=p.get("content"))
    if kind == "uri":
        return "part", _media(p.get("modality"), mime, uri=p.get("uri"))
    if kind == "file" and "file_id" in p:
        return "part", _media(p.get("modality"), mime, file_id=p.get("file_id"))
    if kind in ("image_url", "input_image"):
        url = p.get("image_url")
        url = url.get("url") if isinstance(url, dict) else url
        return "part", _media("image", mime, uri=url, file_id=p.get("file_id"))
    if kind == "input_audio" and isinstance(p.get("input_audio"), dict):
        audio = p["input_audio"]
        return "part", _media("audio", f"audio/{audio.get('format')}" if audio.get("format") else None,
                              data=audio.get("data"))
    if kind in ("image", "file", "audio", "video", "document"):
        source = p.get("source") if isinstance(p.get("source"), dict) else {}  # Anthropic
        uri = source.get("url") or p.get("url") or p.get("uri")
        data = source.get("data") or p.get("data") or p.get("image")
        if isinstance(data, str) and data.startswith(("http://", "https://", "data:")) and uri is None:
            uri, data = data, None
        return "part", _media(kind if kind != "file" else None, mime or source.get("media_type"), uri=uri,
                              file_id=p.get("file_id"), data=data)
    return "part", dict(p)  # another typed part, as it came (server tool calls, compaction, ...)


def parts_from_value(value: Any) -> tuple[list[dict], list[dict], list[tuple[str | None, list[dict]]]]:
    """(content parts, tool calls, tool results) of a message's ``content`` or ``parts``."""
    parts: list[dict] = []
    calls: list[dict] = []
    results: list[tuple[str | None, list[dict]]] = []
    if value is None:
        return parts, calls, results
    if isinstance(value, str):
        if value:
            parts.append({"type": "text", "text": value})
        return parts, calls, results
    for item in value if isinstance(value, list) else [value]:
        kind, got = _part(item)
        if kind == "part":
            parts.append(got)
        elif kind == "call":
            calls.append(got)
        else:
            results.append(got)
    return parts, calls, results


def _message(d: dict, default_role: str) -> list[Message]:
    """One message dict as messages: the message, then one tool message per tool result in it."""
    if d.get("lc") == 1 and isinstance(d.get("kwargs"), dict):  # a serialized LangChain message
        cls = d.get("id")[-1] if isinstance(d.get("id"), list) and d.get("id") else ""
        return _message({"role": _LANGCHAIN.get(cls, default_role), **d["kwargs"]}, default_role)
    raw_role = d.get("role")
    if raw_role is None and isinstance(d.get("type"), str) and d["type"].lower() in _ROLE:  # LangChain dicts
        raw_role = d["type"]
    if raw_role is None and isinstance(d.get("message"), dict):  # gen_ai.choice bodies, OpenAI choices
        inner = _message(d["message"], default_role)
        reason = d.get("finish_reason") or d.get("finishReason")
        if inner and isinstance(reason, str):
            inner[0].finish_reason = reason
        return inner
    role, name = _role(raw_role, default_role)
    body = d.get("parts") if "parts" in d else d.get("content", d.get("text"))
    if isinstance(d.get("data"), dict) and body is None:  # LangChain {"type": "human", "data": {...}}
        return _message({"role": raw_role, **d["data"]}, default_role)
    parts, calls, results = parts_from_value(body)
    for key in ("tool_calls", "toolCalls"):
        if isinstance(d.get(key), list):
            calls += [_tool_call(c) for c in d[key] if isinstance(c, dict)]
    if isinstance(d.get("function_call"), dict):
        calls.append(_tool_call(d["function_call"]))
    message = Message(role=role, content=parts, tool_calls=calls,
                      name=d.get("name") if isinstance(d.get("name"), str) else name)
    tool_call_id = d.get("tool_call_id") or d.get("toolCallId") or (d.get("id") if role == "tool" else None)
    if tool_call_id is not None:
        message.tool_call_id = str(tool_call_id)
    reason = d.get("finish_reason") or d.get("finishReason")
    if isinstance(reason, str):
        message.finish_reason = reason
    out = []
    if role == "tool" and not message.tool_call_id and len(results) == 1 and not parts:
        message.tool_call_id, message.content = results[0]  # one result: it is the message
        results = []
    if message.content or message.tool_calls or message.tool_call_id or not results:
        out.append(message)
    for call_id, content in results:
        out.append(Message(role="tool", content=content, tool_call_id=call_id))
    return out


def messages_from_value(value: Any, default_role: str) -> list[Message]:
    """Messages in a parsed JSON value (see the module docstring); ``default_role`` for text
    and for messages that name no role (``user`` for inputs, ``assistant`` for outputs)."""
    if value is None:
        return []
    if isinstance(value, str):
        return [text_message(default_role, value)] if value else []
    if isinstance(value, list):
        if value and all(isinstance(v, dict) and ("type" in v or "text" in v) and "role" not in v
                         and v.get("type") not in ("message", "human", "ai", "system", "tool") for v in value):
            parts, calls, results = parts_from_value(value)  # a list of parts: one message
            out = [Message(role=default_role, content=parts, tool_calls=calls)] if parts or calls else []
            return out + [Message(role="tool", content=c, tool_call_id=i) for i, c in results]
        if value and all(isinstance(v, str) for v in value):
            return [Message(role=default_role, content=[{"type": "text", "text": v} for v in value])]
        out = []
        for item in value:
            out += _list_item(item, default_role)
        return out
    if isinstance(value, dict):
        return _dict_value(value, default_role)
    return [text_message(default_role, _json_text(value))]


def _list_item(item: Any, default_role: str) -> list[Message]:
    if isinstance(item, dict):
        kind = item.get("type")
        if kind == "function_call":  # OpenAI Responses API items
            return [Message(role="assistant", tool_calls=[_tool_call(item)])]
        if kind == "function_call_output":
            call_id = item.get("call_id")
            return [Message(role="tool", content=_result_content(item.get("output")),
                            tool_call_id=str(call_id) if call_id is not None else None)]
        return _dict_value(item, default_role)
    return messages_from_value(item, default_role)


def _dict_value(d: dict, default_role: str) -> list[Message]:
    if isinstance(d.get("messages"), list):  # a request body, or Vercel's {"system", "prompt", "messages"}
        out = [text_message("system", d["system"])] if isinstance(d.get("system"), str) and d["system"] else []
        return out + messages_from_value(d["messages"], default_role)
    if isinstance(d.get("choices"), list):  # an OpenAI response
        out = []
        for choice in d["choices"]:
            if isinstance(choice, dict) and isinstance(choice.get("message") or choice.get("delta"), dict):
                got = _message(choice.get("message") or choice["delta"], "assistant")
                reason = choice.get("finish_reason")
                if got and isinstance(reason, str):
                    got[0].finish_reason = reason
                out += got
            elif isinstance(choice, dict) and isinstance(choice.get("text"), str):
                out.append(text_message("assistant", choice["text"]))
        return out
    if isinstance(d.get("candidates"), list):  # a Gemini response
        out = []
        for candidate in d["candidates"]:
            if isinstance(candidate, dict) and isinstance(candidate.get("content"), dict):
                got = _message(candidate["content"], "assistant")
                if got and isinstance(candidate.get("finishReason"), str):
                    got[0].finish_reason = candidate["finishReason"]
                out += got
        return out
    if isinstance(d.get("output"), list):  # an OpenAI Responses API response
        out = []
        for item in d["output"]:
            if isinstance(item, dict) and item.get("type") == "message":
                out += _message(item, "assistant")
            elif isinstance(item, dict) and item.get("type") in ("function_call", "reasoning"):
                out += _list_item(item, "assistant") if item["type"] == "function_call" else []
        return out
    if isinstance(d.get("prompt"), str) and not any(k in d for k in ("role", "content", "parts")):
        out = [text_message("system", d["system"])] if isinstance(d.get("system"), str) and d["system"] else []
        return out + [text_message(default_role, d["prompt"])]
    if any(k in d for k in ("role", "content", "parts", "text", "tool_calls", "message", "lc")) or \
            (isinstance(d.get("type"), str) and d["type"].lower() in _ROLE):
        return _message(d, default_role)
    return [text_message(default_role, _json_text(d))]
