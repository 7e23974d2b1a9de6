"""The conversation of a session or a thread, rebuilt from its spans (and GenAI log events).

Pure functions over OTLP ``TracesData`` and, when given, log records
(``opentelemetry.proto.logs.v1.LogRecord``, alone or as ``(Resource, LogRecord)``):
:func:`session_transcript` and :func:`thread_transcript` return a :class:`Transcript`,
whose :meth:`Transcript.to_json` is the answer of ``GET /v1/sessions/{id}/messages`` and
``GET /v1/threads/{id}/messages`` (``docs/interface.md``).

How (``calls.py`` finds the calls, ``conventions.py`` reads each span, ``messages.py`` each
message shape):

1. Every span recording a model call's messages is a *call*: its inputs are placed at the
   span's start, its outputs at its end. GenAI events arriving as log records (event name in
   ``event_name`` or the ``event.name`` attribute, body an AnyValue map) join the call of the
   span they name (``span_id``), else form calls of their own (a run of message events up to
   the ``gen_ai.choice`` events that follow it), placed at the records' times. A trace with no
   model-call messages at all shows the generic input and output of its outermost spans that
   have them (an agent or chain span: OpenInference ``input.value``, MLflow span inputs,
   Langfuse observation input).
2. Each model call re-sends the history, so a message already shown is not shown again: a
   message is the *n*-th of its kind (role, normalized text, tool call ids; a tool result by
   its ``tool_call_id``) in its call's inputs and outputs, and it is shown when fewer than *n*
   of its kind were shown before, in the session or, for a thread, in its earlier sessions. A
   repeated "yes" in one history is thus kept, and the same history sent again is not.
3. System messages are shown where they change: when a call's system messages differ from
   the last ones shown for the same agent.
4. ``agent`` is ``gen_ai.agent.name`` (or OpenInference ``agent.name``) of the span or its
   nearest ancestor; ``handoff`` is true on an agent's own message (system prompt or answer)
   when the session's agent message before it was another agent's (user messages and tool
   results are no agent's words, whichever agent's call recorded them). Assistant messages carry the call's ``model`` and, on its first
   output, its ``usage``.

Work is bounded: calls are read in time order and reading stops once the page is full (one
message past it tells ``truncated``), and at most :data:`MAX_MESSAGES` messages are built.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from opentelemetry.proto.trace.v1.trace_pb2 import TracesData

from otel_sessions.exporter.lookup.calls import Call, SessionContent, log_records, session_calls, timeline
from otel_sessions.exporter.lookup.conventions import span_model, span_usage
from otel_sessions.exporter.lookup.history import HistoryCache
from otel_sessions.exporter.lookup.messages import Message

__all__ = ["Transcript", "TranscriptBuilder", "SessionContent", "log_records", "session_transcript",
           "thread_transcript", "DEFAULT_LIMIT", "MAX_LIMIT", "MAX_MESSAGES"]

DEFAULT_LIMIT = 500
MAX_LIMIT = 2000
#: Messages built at most for one answer (``offset`` + ``limit`` + 1 is the usual bound).
MAX_MESSAGES = 20_000


@dataclass
class Transcript:
    """A page of messages: ``data`` (JSON dicts), and whether more follow (``truncated``)."""

    data: list[dict[str, Any]]
    limit: int
    offset: int
    truncated: bool

    def to_json(self) -> dict[str, Any]:
        return {"data": self.data, "limit": self.limit, "offset": self.offset, "truncated": self.truncated}


# --- the answer --------------------------------------------------------------------------
def _iso(nanos: int) -> str | None:
    if not nanos:
        return None
    moment = datetime.fromtimestamp(nanos // 1000 / 1e6, tz=timezone.utc)
    return moment.isoformat(timespec="microseconds").replace("+00:00", "Z")


class TranscriptBuilder:
    """Builds one page: sessions are added in order (:meth:`add_session`) until :attr:`full`;
    de-duplication state spans every session added (a thread's transcript)."""

    def __init__(self, limit: int = DEFAULT_LIMIT, offset: int = 0) -> None:
        self.limit = limit
        self.offset = offset
        self.wanted = min(offset + limit + 1, MAX_MESSAGES + 1)
        self.shown: Counter = Counter()
        self.system: dict[str | None, tuple] = {}
        self.last_agent: str | None = None
        self.out: list[dict[str, Any]] = []
        self.history = HistoryCache()  # re-sent histories parsed once, across sessions too

    @property
    def full(self) -> bool:
        """True once the page and one message past it are built (later sessions change nothing)."""
        return len(self.out) >= self.wanted

    def add_session(self, content: SessionContent) -> None:
        self.last_agent = None  # handoffs are within a session: a thread's answer is the same as its session's
        for entry in timeline(session_calls(content, self.history)):
            if self.full:
                return
            self.add(entry)

    def result(self, more: bool = False) -> Transcript:
        """The page; ``more``: sessions were left unread (the transcript may go on)."""
        end = min(self.offset + self.limit, MAX_MESSAGES)
        truncated = more or len(self.out) > end
        return Transcript(self.out[self.offset:end], self.limit, self.offset, truncated)

    def add(self, entry: tuple[int, int, int, Call]) -> None:
        time, phase, _order, call = entry
        exchange = call.exchange()
        occurrence = call.occurrences()
        first = 0 if phase == 0 else len(exchange.inputs)
        messages = exchange.inputs if phase == 0 else exchange.outputs
        if phase == 0:
            system = tuple(m.key() for m in messages if m.role == "system")
            if system and self.system.get(call.agent) != system:
                self.system[call.agent] = system
                for message in messages:
                    if message.role == "system":
                        self._emit(message, call, time, exchange.source, usage=False)
        usage_done = False
        skip = exchange.resent if phase == 0 else 0  # re-sent inputs: shown or accounted for before
        for i in range(skip, len(messages)):
            message = messages[i]
            if message.role == "system":
                continue
            key = message.key()
            if occurrence[first + i] <= self.shown[key]:
                continue
            if len(self.out) >= self.wanted:
                return
            self.shown[key] += 1
            usage = phase == 1 and message.role == "assistant" and not usage_done
            usage_done = usage_done or usage
            self._emit(message, call, time, exchange.source, usage=usage)

    def _emit(self, message: Message, call: Call, time: int, source: str, usage: bool) -> None:
        if self.full:
            return
        attrs = call.span.attrs if call.span is not None else {}
        assistant = message.role == "assistant"
        # a handoff: an agent's own message (its system prompt or answer) after another agent's in
        # the same session; user messages and tool results are no agent's words, even when an
        # agent's call recorded them
        own = message.role in ("assistant", "system")
        handoff = own and call.agent is not None and self.last_agent not in (None, call.agent)
        if own and call.agent is not None:
            self.last_agent = call.agent
        self.out.append({
            "role": message.role,
            "content": message.content,
            "tool_calls": message.tool_calls,
            "tool_call_id": message.tool_call_id,
            "name": message.name,
            "agent": call.agent,
            "handoff": handoff,
            "model": span_model(attrs) if assistant else None,
            "usage": span_usage(attrs) if usage else None,
            "finish_reason": message.finish_reason,
            "session_id": call.session_id,
            "trace_id": call.trace_id.hex() if call.trace_id else None,
            "span_id": call.span_id.hex() if call.span_id else None,
            "time": _iso(time),
            "source": source,
            "raw": message.raw,
            "redacted": message.redacted,
        })


def thread_transcript(sessions: Iterable[SessionContent], limit: int = DEFAULT_LIMIT, offset: int = 0) -> Transcript:
    """The messages of ``sessions`` (a thread's, in order), each shown once across all of them;
    the page ``offset`` .. ``offset + limit``."""
    builder = TranscriptBuilder(limit, offset)
    for content in sessions:
        builder.add_session(content)
        if builder.full:
            break
    return builder.result()


def session_transcript(session_id: str, traces: TracesData, logs: Iterable[Any] = (),
                       limit: int = DEFAULT_LIMIT, offset: int = 0) -> Transcript:
    """The messages of one session (see the module docstring)."""
    return thread_transcript([SessionContent(session_id, traces, logs)], limit, offset)
