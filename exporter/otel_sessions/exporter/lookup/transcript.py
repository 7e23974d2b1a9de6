"""The conversation of a session or a thread, rebuilt from its spans (and GenAI log events).

Pure functions over OTLP ``TracesData`` and, when given, log records
(``opentelemetry.proto.logs.v1.LogRecord``, alone or as ``(Resource, LogRecord)``):
:func:`session_transcript` and :func:`thread_transcript` return a :class:`Transcript`,
whose :meth:`Transcript.to_json` is the answer of ``GET /v1/sessions/{id}/messages`` and
``GET /v1/threads/{id}/messages`` (``docs/interface.md``).

How (``conventions.py`` reads each span; ``messages.py`` reads each message shape):

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
   nearest ancestor; ``handoff`` is true on the first message of an agent other than the one
   of the message before it. Assistant messages carry the call's ``model`` and, on its first
   output, its ``usage``.

Work is bounded: calls are read in time order and reading stops once the page is full (one
message past it tells ``truncated``), and at most :data:`MAX_MESSAGES` messages are built.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from opentelemetry.proto.trace.v1.trace_pb2 import TracesData

from otel_sessions.exporter.lookup.conventions import (
    GENAI_EVENTS,
    IO,
    LEVEL_KEYS,
    MESSAGE,
    Exchange,
    event_messages,
    span_agent,
    span_exchange,
    span_level,
    span_model,
    span_usage,
)
from otel_sessions.exporter.lookup.history import HistoryCache
from otel_sessions.exporter.lookup.messages import Message
from otel_sessions.exporter.lookup.otlp_values import any_value, attributes_dict

__all__ = ["Transcript", "TranscriptBuilder", "SessionContent", "session_transcript", "thread_transcript", "DEFAULT_LIMIT",
           "MAX_LIMIT", "MAX_MESSAGES"]

DEFAULT_LIMIT = 500
MAX_LIMIT = 2000
#: Messages built at most for one answer (``offset`` + ``limit`` + 1 is the usual bound).
MAX_MESSAGES = 20_000
_ZERO_SPAN = bytes(8)
_ANCESTRY = 256  # parent steps followed at most when looking for an agent
_OUTPUT_EVENTS = frozenset({"gen_ai.choice", "gen_ai.content.completion"})


@dataclass
class SessionContent:
    """What a session holds: its spans and, when stored, its log records."""

    session_id: str
    traces: TracesData
    logs: Iterable[Any] = ()


@dataclass
class Transcript:
    """A page of messages: ``data`` (JSON dicts), and whether more follow (``truncated``)."""

    data: list[dict[str, Any]]
    limit: int
    offset: int
    truncated: bool

    def to_json(self) -> dict[str, Any]:
        return {"data": self.data, "limit": self.limit, "offset": self.offset, "truncated": self.truncated}


@dataclass
class _Span:
    trace_id: bytes
    span_id: bytes
    parent: bytes
    start: int
    end: int
    proto: Any  # the OTLP span: its attributes and events are read when needed
    agent: str | None
    level: int | None
    _attrs: dict[str, Any] | None = None

    @property
    def attrs(self) -> dict[str, Any]:
        if self._attrs is None:
            self._attrs = attributes_dict(self.proto.attributes)
        return self._attrs

    @property
    def events(self) -> list[tuple[str, dict[str, Any]]]:
        return [(e.name, attributes_dict(e.attributes)) for e in self.proto.events]


@dataclass
class _LogEvent:
    time: int
    name: str
    body: Any
    attrs: dict[str, Any]


@dataclass
class _Call:
    """One model call (or input/output span) of the timeline; its exchange is read when needed."""

    session_id: str
    trace_id: bytes
    span_id: bytes | None
    t_in: int
    t_out: int
    span: _Span | None = None
    agent: str | None = None
    logs: list[_LogEvent] = field(default_factory=list)
    history: HistoryCache | None = None
    _exchange: Exchange | None = None
    _occurrence: list[int] | None = None

    def exchange(self) -> Exchange:
        if self._exchange is None:
            exchange = Exchange()
            if self.span is not None and self.span.level is not None:
                exchange = span_exchange(self.span.attrs, self.span.events, self.span.level, self.history)
            if self.logs and not (exchange.inputs and exchange.outputs):
                got_in, got_out = _log_messages(self.logs)
                if not exchange.inputs and got_in:
                    exchange.inputs, exchange.source = got_in, exchange.source or "gen_ai.events"
                if not exchange.outputs and got_out:
                    exchange.outputs, exchange.source = got_out, exchange.source or "gen_ai.events"
            self._exchange = exchange
        return self._exchange

    def occurrences(self) -> list[int]:
        """For each message of inputs then outputs: how many of its kind (``Message.key()``) so far
        in the call, system messages not counted (0 for them, and for re-sent inputs, which an
        earlier call showed or accounted for)."""
        if self._occurrence is None:
            exchange = self.exchange()
            counts = dict(exchange.resent_counts) if exchange.resent_counts else {}
            out = [0] * exchange.resent
            for message in (*exchange.inputs[exchange.resent:], *exchange.outputs):
                if message.role == "system":
                    out.append(0)
                    continue
                key = message.key()
                counts[key] = seen = counts.get(key, 0) + 1
                out.append(seen)
            self._occurrence = out
        return self._occurrence


def _log_messages(events: list[_LogEvent]) -> tuple[list[Message], list[Message]]:
    inputs: list[Message] = []
    outputs: list[Message] = []
    for event in events:
        try:
            got_in, got_out = event_messages(event.name, event.body, event.attrs)
        except Exception:  # an unreadable event shows nothing (never an error for the answer)
            continue
        inputs += got_in
        outputs += got_out
    return inputs, outputs


# --- reading the session -----------------------------------------------------------------
def _spans(traces: TracesData) -> dict[tuple[bytes, bytes], _Span]:
    out: dict[tuple[bytes, bytes], _Span] = {}
    for rs in traces.resource_spans:
        for ss in rs.scope_spans:
            for span in ss.spans:
                key = (span.trace_id, span.span_id)
                if key in out:
                    continue
                # keys, and the few values that tell the span's level and agent (big values,
                # the messages, are read only for the spans that have them)
                light = {kv.key: any_value(kv.value) if kv.key in LEVEL_KEYS else True for kv in span.attributes}
                parent = span.parent_span_id if span.parent_span_id != _ZERO_SPAN else b""
                out[key] = _Span(span.trace_id, span.span_id, parent, span.start_time_unix_nano,
                                 max(span.end_time_unix_nano, span.start_time_unix_nano), span, span_agent(light),
                                 span_level(light, (e.name for e in span.events)))
    return out


def _log_events(logs: Iterable[Any]) -> list[tuple[bytes, bytes, _LogEvent]]:
    """(trace id, span id, event) of every GenAI event among ``logs``, in time order."""
    out = []
    for item in logs:
        record = item[1] if isinstance(item, tuple) else item
        attrs = attributes_dict(record.attributes)
        name = getattr(record, "event_name", "") or attrs.get("event.name") or ""
        if name not in GENAI_EVENTS:
            continue
        body = any_value(record.body) if record.HasField("body") else None
        time = record.time_unix_nano or record.observed_time_unix_nano
        span_id = record.span_id if len(record.span_id) == 8 and record.span_id != _ZERO_SPAN else b""
        out.append((record.trace_id, span_id, _LogEvent(time, name, body, attrs)))
    out.sort(key=lambda item: item[2].time)
    return out


def _agent(spans: dict[tuple[bytes, bytes], _Span], span: _Span, memo: dict) -> str | None:
    """``gen_ai.agent.name`` of the span or its nearest ancestor."""
    path = []
    current: _Span | None = span
    found = None
    for _ in range(_ANCESTRY):
        if current is None:
            break
        key = (current.trace_id, current.span_id)
        if key in memo:
            found = memo[key]
            break
        path.append(key)
        found = current.agent
        if found is not None:
            break
        current = spans.get((current.trace_id, current.parent)) if current.parent else None
    for key in path:
        memo[key] = found
    return found


def _calls(content: SessionContent, history: HistoryCache | None = None) -> list[_Call]:
    spans = _spans(content.traces)
    memo: dict = {}
    calls: dict[tuple[bytes, bytes], _Call] = {}
    with_messages = {s.trace_id for s in spans.values() if s.level == MESSAGE}

    def call_of(span: _Span) -> _Call:
        key = (span.trace_id, span.span_id)
        if key not in calls:
            calls[key] = _Call(content.session_id, span.trace_id, span.span_id, span.start, span.end, span,
                               _agent(spans, span, memo), history=history)
        return calls[key]

    for span in spans.values():
        if span.level == MESSAGE:
            call_of(span)
    loose: list[_Call] = []
    by_span: dict[tuple[bytes, bytes], _Call] = {}  # events naming a span that is not stored
    for trace_id, span_id, event in _log_events(content.logs):
        with_messages.add(trace_id)
        span = spans.get((trace_id, span_id)) if span_id else None
        if span is not None:
            call_of(span).logs.append(event)
            continue
        last = by_span.get((trace_id, span_id)) if span_id else (loose[-1] if loose else None)
        # without a span, a run of message events and the choices after it are one call
        if last is not None and (span_id or (last.trace_id == trace_id and last.span_id is None and (
                event.name in _OUTPUT_EVENTS or not any(e.name in _OUTPUT_EVENTS for e in last.logs)))):
            last.logs.append(event)
            last.t_out = max(last.t_out, event.time)
            continue
        call = _Call(content.session_id, trace_id, span_id or None, event.time, event.time, logs=[event])
        loose.append(call)
        if span_id:
            by_span[(trace_id, span_id)] = call
    for span in spans.values():  # input/output spans: outermost ones, in traces without messages
        if span.level == IO and span.trace_id not in with_messages and not _io_ancestor(spans, span):
            call_of(span)
    return [*calls.values(), *loose]


def _io_ancestor(spans: dict[tuple[bytes, bytes], _Span], span: _Span) -> bool:
    current = spans.get((span.trace_id, span.parent)) if span.parent else None
    for _ in range(_ANCESTRY):
        if current is None:
            return False
        if current.level == IO:
            return True
        current = spans.get((current.trace_id, current.parent)) if current.parent else None
    return False


def _timeline(calls: list[_Call]) -> list[tuple[int, int, int, _Call]]:
    """(time, phase, order, call): inputs (phase 0) at the call's start, outputs (1) at its end."""
    entries = []
    for order, call in enumerate(sorted(calls, key=lambda c: (c.t_in, c.t_out))):
        entries.append((call.t_in, 0, order, call))
        entries.append((max(call.t_out, call.t_in), 1, order, call))
    entries.sort(key=lambda e: e[:3])
    return entries


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
        for entry in _timeline(_calls(content, self.history)):
            if self.full:
                return
            self.add(entry)

    def result(self, more: bool = False) -> Transcript:
        """The page; ``more``: sessions were left unread (the transcript may go on)."""
        end = min(self.offset + self.limit, MAX_MESSAGES)
        truncated = more or len(self.out) > end
        return Transcript(self.out[self.offset:end], self.limit, self.offset, truncated)

    def add(self, entry: tuple[int, int, int, _Call]) -> None:
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

    def _emit(self, message: Message, call: _Call, time: int, source: str, usage: bool) -> None:
        if self.full:
            return
        attrs = call.span.attrs if call.span is not None else {}
        handoff = call.agent is not None and self.last_agent is not None and call.agent != self.last_agent
        if call.agent is not None:
            self.last_agent = call.agent
        assistant = message.role == "assistant"
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
