"""Chat messages recorded as flattened attributes, one attribute per field.

* OpenInference: ``llm.input_messages.N.message.role`` / ``.content`` /
  ``.contents.M.message_content.type|text|image.image.url`` /
  ``.tool_calls.K.tool_call.id|function.name|function.arguments`` / ``.tool_call_id`` /
  ``.name`` (and ``llm.output_messages.N...`` for the answer);
* Traceloop / OpenLLMetry: ``gen_ai.prompt.N.role`` / ``.content`` (multimodal content as
  JSON text) / ``.tool_call_id`` / ``.tool_calls.K.id|name|arguments`` (and
  ``gen_ai.completion.N...`` with ``finish_reason``).

Both are gathered into message dicts and read by ``messages.py``; numeric path segments
order the messages, parts and calls; odd keys are skipped.
"""

from __future__ import annotations

from typing import Any

from otel_sessions.exporter.lookup.messages import Message, load_json, messages_from_value

__all__ = ["OI_IN", "OI_OUT", "TL_IN", "TL_OUT", "openinference", "traceloop", "unflatten"]

OI_IN, OI_OUT = "llm.input_messages.", "llm.output_messages."
TL_IN, TL_OUT = "gen_ai.prompt.", "gen_ai.completion."


def unflatten(attrs: dict[str, Any], prefix: str) -> list[dict]:
    """``prefix.N.a.b = v`` attributes as ``[{"a": {"b": v}}, ...]`` in N order (numeric path
    segments become int keys)."""
    tree: dict[int, dict] = {}
    for key, value in attrs.items():
        if not key.startswith(prefix):
            continue
        segments = key[len(prefix):].split(".")
        if not segments[0].isdigit():
            continue
        node = tree.setdefault(int(segments[0]), {})
        for segment in segments[1:-1]:
            step = int(segment) if segment.isdigit() else segment
            child = node.get(step)
            if not isinstance(child, dict):
                child = node[step] = {}
            node = child
        last = segments[-1]
        node[int(last) if last.isdigit() else last] = value
    return [tree[i] for i in sorted(tree)]


def _indexed(node: Any) -> list:
    """The values of an ``{0: ..., 1: ...}`` node in order."""
    if not isinstance(node, dict):
        return []
    return [node[k] for k in sorted(k for k in node if isinstance(k, int))]


def _oi_message(node: Any) -> dict[str, Any] | None:
    """An OpenInference message node as an OpenAI-like message dict."""
    m = node.get("message") if isinstance(node, dict) else None
    if not isinstance(m, dict):
        return None
    d: dict[str, Any] = {"role": m.get("role")}
    contents = [c.get("message_content") for c in _indexed(m.get("contents")) if isinstance(c, dict)]
    parts: list[Any] = []
    if isinstance(m.get("content"), str):
        parts.append(m["content"])
    for c in contents:
        if not isinstance(c, dict):
            continue
        kind = c.get("type")
        if kind == "text" or (kind is None and "text" in c):
            parts.append({"type": "text", "text": c.get("text", "")})
        elif kind in ("image", "audio", "video", "document"):
            inner = c.get(kind, {}).get(kind, {}) if isinstance(c.get(kind), dict) else {}
            parts.append({"type": kind, "url": inner.get("url"), "mime_type": inner.get("mime_type")})
        else:
            parts.append({k: v for k, v in c.items()})
    d["content"] = parts
    calls = []
    for call in _indexed(m.get("tool_calls")):
        tc = call.get("tool_call") if isinstance(call, dict) else None
        if isinstance(tc, dict):
            function = tc.get("function") if isinstance(tc.get("function"), dict) else {}
            calls.append({"id": tc.get("id"), "function": {"name": function.get("name"),
                                                           "arguments": function.get("arguments")}})
    if m.get("function_call_name"):
        calls.append({"function": {"name": m["function_call_name"],
                                   "arguments": m.get("function_call_arguments_json")}})
    d["tool_calls"] = calls
    for key in ("tool_call_id", "name"):
        if m.get(key) is not None:
            d[key] = str(m[key])
    return d


def openinference(attrs: dict[str, Any]) -> tuple[list[Message], list[Message]]:
    out = []
    for prefix, role in ((OI_IN, "user"), (OI_OUT, "assistant")):
        dicts = [d for d in (_oi_message(node) for node in unflatten(attrs, prefix)) if d is not None]
        out.append(messages_from_value(dicts, role) if dicts else [])
    return out[0], out[1]


def _traceloop_list(attrs: dict[str, Any], prefix: str, role: str) -> list[Message]:
    messages: list[Message] = []
    for node in unflatten(attrs, prefix):
        d: dict[str, Any] = {"role": node.get("role") or role}
        content = node.get("content")
        if isinstance(content, str) and content[:1] in ("[", "{"):  # multimodal content as JSON text
            parsed, ok = load_json(content)
            content = parsed if ok and isinstance(parsed, list) else content
        d["content"] = content
        d["tool_calls"] = [{"id": c.get("id"), "name": c.get("name"), "arguments": c.get("arguments")}
                           for c in _indexed(node.get("tool_calls")) if isinstance(c, dict)]
        if isinstance(node.get("function_call"), dict):
            d["tool_calls"].append(node["function_call"])
        for key in ("tool_call_id", "finish_reason", "name"):
            if node.get(key) is not None:
                d[key] = str(node[key])
        messages += messages_from_value(d, role)
    return messages


def traceloop(attrs: dict[str, Any]) -> tuple[list[Message], list[Message]]:
    return _traceloop_list(attrs, TL_IN, "user"), _traceloop_list(attrs, TL_OUT, "assistant")
