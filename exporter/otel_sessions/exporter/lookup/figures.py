"""A session's conversation figures: the list entry's ``conversation`` object.

:func:`conversation_figures` reads what a session holds (``SessionContent``: its spans and
GenAI log events) and returns :class:`ConversationFigures`:

* ``message_count``: user and assistant messages of the session's transcript (``transcript.py``:
  each message once, however often the history is re-sent); ``first_user_message`` and
  ``last_assistant_message``: their text, at most :data:`EXCERPT` characters (longer text ends
  with ``…``);
* ``model_calls`` and ``response_latency_ms``: the model-call spans and their mean duration;
* ``time_to_first_token_ms``: the mean over the model calls that record it (streamed calls), from
  ``gen_ai.response.time_to_first_chunk`` (GenAI semantic conventions, seconds), else
  ``gen_ai.response.time_to_first_token`` (seconds), Vercel AI SDK ``ai.response.msToFirstChunk``
  / ``ai.stream.msToFirstChunk`` (ms), Langfuse ``langfuse.observation.completion_start_time``
  (an RFC 3339 time: minus the span's start);
* ``tool_calls``, ``tool_errors`` and ``tool_latency_ms``: the tool-execution spans, those that
  ended in ERROR, and their mean duration.

A model call is a span with ``gen_ai.operation.name`` ``chat``, ``text_completion`` or
``generate_content``, OpenInference ``openinference.span.kind`` ``LLM``, Traceloop
``llm.request.type`` ``chat`` / ``completion`` or completions recorded (``gen_ai.completion.N.*``), Langfuse ``generation``, MLflow ``CHAT_MODEL`` /
``LLM``, or a Vercel AI SDK ``doGenerate`` / ``doStream`` span (``ai.operationId``, else the span name). A tool execution is a span with
``gen_ai.operation.name`` ``execute_tool``, OpenInference ``TOOL``, Traceloop
``traceloop.span.kind`` ``tool``, Langfuse ``tool``, MLflow ``TOOL`` or Vercel ``ai.toolCall``.

The figures are computed on read, so the ingest path does no content work. :class:`FigureCache`
keeps them in Redis per session (``P:{S}:conv``, JSON, expiring with the retention), stamped
with the summary's span and log counts: a session that received anything since is computed
again; the cache is written best-effort (a Redis refusing writes still answers lookups). List
answers fill their page; the ``q`` filter reads them for candidates whose summary
does not mention the text (``queries.py``), computing at most a bounded number per request.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from otel_sessions.exporter.errors import StoreUnavailable
from otel_sessions.exporter.lookup.calls import SessionContent, log_records
from otel_sessions.exporter.lookup.transcript import MAX_MESSAGES, TranscriptBuilder
from otel_sessions.exporter.store.sessions import SessionStore
from otel_sessions.exporter.store.summary import SessionSummary

__all__ = ["ConversationFigures", "FigureCache", "conversation_figures", "EXCERPT"]

log = logging.getLogger(__name__)

#: Characters kept of the first user and last assistant message.
EXCERPT = 200
_ERROR = 2  # Status.STATUS_CODE_ERROR
_MODEL_OPERATIONS = frozenset({"chat", "text_completion", "generate_content"})
_VERCEL_MODEL_CALLS = frozenset({"ai.generateText.doGenerate", "ai.streamText.doStream",
                                 "ai.generateObject.doGenerate", "ai.streamObject.doStream"})
_COMPLETIONS = "gen_ai.completion."
_READ = frozenset({"gen_ai.operation.name", "openinference.span.kind", "llm.request.type", "traceloop.span.kind",
                   "langfuse.observation.type", "mlflow.spanType", "ai.operationId",
                   "gen_ai.response.time_to_first_chunk", "gen_ai.response.time_to_first_token",
                   "ai.response.msToFirstChunk", "ai.stream.msToFirstChunk",
                   "langfuse.observation.completion_start_time"})


@dataclass(frozen=True)
class ConversationFigures:
    """What a session's conversation amounts to (see the module docstring); times in ms."""

    message_count: int = 0
    user_messages: int = 0
    assistant_messages: int = 0
    first_user_message: str | None = None
    last_assistant_message: str | None = None
    model_calls: int = 0
    response_latency_ms: float | None = None
    time_to_first_token_ms: float | None = None
    tool_calls: int = 0
    tool_errors: int = 0
    tool_latency_ms: float | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ConversationFigures:
        return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})

    def mentions(self, text: str) -> bool:
        """``text`` (lower case) is in the first user or the last assistant message."""
        return any(text in m.lower() for m in (self.first_user_message, self.last_assistant_message) if m)


def _excerpt(text: str) -> str:
    return text if len(text) <= EXCERPT else text[:EXCERPT - 1] + "…"


def _message_text(message: dict[str, Any]) -> str:
    pieces = [str(p.get("text", "")) for p in message.get("content") or () if p.get("type") == "text"]
    return " ".join(" ".join(pieces).split())


def _value(v) -> Any:
    kind = v.WhichOneof("value")
    return getattr(v, kind) if kind in ("string_value", "int_value", "double_value", "bool_value") else None


def _seconds(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) and number >= 0 else None


def _rfc3339_ns(text: Any) -> int | None:
    if not isinstance(text, str):
        return None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    if moment.tzinfo is None:
        return None
    return int(moment.timestamp() * 1e9)


def _time_to_first_token_ms(a: dict[str, Any], start_ns: int) -> float | None:
    for key in ("gen_ai.response.time_to_first_chunk", "gen_ai.response.time_to_first_token"):
        if key in a and (s := _seconds(a[key])) is not None:
            return s * 1000
    for key in ("ai.response.msToFirstChunk", "ai.stream.msToFirstChunk"):
        if key in a and (ms := _seconds(a[key])) is not None:
            return ms
    first = _rfc3339_ns(a.get("langfuse.observation.completion_start_time"))
    if first is not None and first >= start_ns:
        return (first - start_ns) / 1e6
    return None


def _kind(a: dict[str, Any], name: str, completions: bool) -> str | None:
    """"model", "tool" or None, by the conventions of the module docstring (``name``: the span's
    name, the Vercel AI SDK's operation id; ``completions``: the span has Traceloop
    ``gen_ai.completion.N.*`` attributes)."""
    operation = str(a.get("gen_ai.operation.name", "")).lower()
    oi = str(a.get("openinference.span.kind", "")).upper()
    langfuse = str(a.get("langfuse.observation.type", "")).lower()
    mlflow = str(a.get("mlflow.spanType", "")).strip("\"").upper()  # MLflow writes attributes as JSON
    vercel = str(a.get("ai.operationId") or name)
    if operation == "execute_tool" or oi == "TOOL" or str(a.get("traceloop.span.kind", "")).lower() == "tool" \
            or langfuse == "tool" or mlflow == "TOOL" or vercel == "ai.toolCall":
        return "tool"
    if operation in _MODEL_OPERATIONS or oi == "LLM" or langfuse == "generation" or mlflow in ("CHAT_MODEL", "LLM") \
            or vercel in _VERCEL_MODEL_CALLS or str(a.get("llm.request.type", "")).lower() in ("chat", "completion") or completions:
        return "model"
    return None


def _mean(values: list[float]) -> float | None:
    return round(sum(values) / len(values), 3) if values else None


def conversation_figures(content: SessionContent) -> ConversationFigures:
    """The figures of one session (see the module docstring)."""
    builder = TranscriptBuilder(MAX_MESSAGES, 0)
    builder.add_session(content)
    users = [m for m in builder.out if m["role"] == "user"]
    assistants = [m for m in builder.out if m["role"] == "assistant"]
    first_user = next((t for t in map(_message_text, users) if t), None)
    last_assistant = next((t for t in map(_message_text, reversed(assistants)) if t), None)

    model_ms: list[float] = []
    first_token_ms: list[float] = []
    tool_ms: list[float] = []
    tool_errors = 0
    for rs in content.traces.resource_spans:
        for ss in rs.scope_spans:
            for span in ss.spans:
                a = {kv.key: _value(kv.value) for kv in span.attributes if kv.key in _READ}
                kind = _kind(a, span.name, any(kv.key.startswith(_COMPLETIONS) for kv in span.attributes))
                if kind is None:
                    continue
                duration_ms = max(0, span.end_time_unix_nano - span.start_time_unix_nano) / 1e6
                if kind == "tool":
                    tool_ms.append(duration_ms)
                    tool_errors += span.status.code == _ERROR
                else:
                    model_ms.append(duration_ms)
                    ttft = _time_to_first_token_ms(a, span.start_time_unix_nano)
                    if ttft is not None:
                        first_token_ms.append(ttft)
    return ConversationFigures(
        message_count=len(users) + len(assistants), user_messages=len(users), assistant_messages=len(assistants),
        first_user_message=_excerpt(first_user) if first_user else None,
        last_assistant_message=_excerpt(last_assistant) if last_assistant else None,
        model_calls=len(model_ms), response_latency_ms=_mean(model_ms), time_to_first_token_ms=_mean(first_token_ms),
        tool_calls=len(tool_ms), tool_errors=tool_errors, tool_latency_ms=_mean(tool_ms),
    )


def _version(summary: SessionSummary) -> str:
    """What the cached figures were computed from: spans and log records counted."""
    return f"{summary.span_count}.{summary.log_count}"


class FigureCache:
    """:class:`ConversationFigures` of sessions, cached in Redis (``Keys.conversation``)."""

    #: Sessions whose figures one request computes at most (each reads the session's spans).
    COMPUTE_BUDGET = 200
    _BATCH = 16  # sessions read per round trip

    def __init__(self, store: SessionStore) -> None:
        self.store = store

    async def fill(self, summaries: list[SessionSummary], budget: int | None = None) -> int:
        """Set ``conversation`` on each summary: cached figures when current, else computed,
        at most ``budget`` (default :attr:`COMPUTE_BUDGET`) of them. Returns how many summaries
        were left without figures (beyond the budget)."""
        if not summaries:
            return 0
        budget = self.COMPUTE_BUDGET if budget is None else budget
        keys = [self.store.keys.conversation(s.id) for s in summaries]

        def read(pipe) -> None:
            for key in keys:
                pipe.get(key)

        missing: list[SessionSummary] = []
        for summary, raw in zip(summaries, await self.store.gateway.run(read)):
            cached = _decode(raw, _version(summary))
            if cached is None:
                missing.append(summary)
            else:
                summary.conversation = cached
        todo, left = missing[:budget], len(missing) - min(len(missing), budget)
        for first in range(0, len(todo), self._BATCH):
            await self._compute(todo[first:first + self._BATCH])
        return left

    async def _compute(self, summaries: list[SessionSummary]) -> None:
        ids = [s.id for s in summaries]
        traces = await self.store.get_spans_of(ids)
        computed: list[tuple[SessionSummary, ConversationFigures]] = []
        for summary, data in zip(summaries, traces):
            if data is None:
                continue
            logs = await self.store.logs.get_logs(summary.id) if summary.log_count else None
            figures = conversation_figures(SessionContent(summary.id, data, list(log_records(logs)) if logs else ()))
            summary.conversation = figures
            computed.append((summary, figures))
            await asyncio.sleep(0)  # let the receivers run between sessions
        retention = self.store.retention_ms

        def write(pipe) -> None:
            for summary, figures in computed:
                value = json.dumps({"v": _version(summary), "f": figures.to_json()}, separators=(",", ":"))
                pipe.set(self.store.keys.conversation(summary.id), value, px=retention)

        if computed:
            try:
                await self.store.gateway.run(write)
            except StoreUnavailable:  # a cache: a Redis refusing writes (OOM, READONLY...) still answers reads
                log.debug("conversation figures not cached: Redis refuses writes")


def _decode(raw: bytes | None, version: str) -> ConversationFigures | None:
    if not raw:
        return None
    try:
        data = json.loads(raw)
        if data.get("v") != version:
            return None
        return ConversationFigures.from_json(data["f"])
    except (ValueError, TypeError, KeyError, AttributeError):
        return None  # an older or damaged entry: computed again
