"""A session's model calls and their place in time: what a transcript is built from.

:func:`session_calls` reads a session's spans (OTLP ``TracesData``) and, when given, its log
records, and returns its *calls*: every span recording a model call's messages (its inputs
placed at the span's start, its outputs at its end), the GenAI events of log records (joined
to the call of the span they name, else calls of their own), and, in a trace without model
messages, its outermost spans with a generic input and output. :func:`timeline` orders
them. A call's messages are read (``conventions.py``) only when first asked for, so a page
that is full early reads no further.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
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
)
from otel_sessions.exporter.lookup.history import HistoryCache
from otel_sessions.exporter.lookup.messages import Message
from otel_sessions.exporter.lookup.otlp_values import any_value, attributes_dict

__all__ = ["SessionContent", "Call", "log_records", "session_calls", "timeline"]

_ZERO_SPAN = bytes(8)
_ANCESTRY = 256  # parent steps followed at most when looking for an agent
_OUTPUT_EVENTS = frozenset({"gen_ai.choice", "gen_ai.content.completion"})

def log_records(data) -> Iterator[tuple[Any, Any]]:
    """(Resource, LogRecord) of every record of an OTLP ``LogsData`` (what a session's stored
    logs read as), for :class:`SessionContent` ``logs``."""
    for rl in data.resource_logs:
        for sl in rl.scope_logs:
            for record in sl.log_records:
                yield rl.resource, record


@dataclass
class SessionContent:
    """What a session holds: its spans and, when stored, its log records (``LogRecord`` or
    ``(Resource, LogRecord)``; :func:`log_records` reads them from a ``LogsData``)."""

    session_id: str
    traces: TracesData
    logs: Iterable[Any] = ()


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
class Call:
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


def session_calls(content: SessionContent, history: HistoryCache | None = None) -> list[Call]:
    spans = _spans(content.traces)
    memo: dict = {}
    calls: dict[tuple[bytes, bytes], Call] = {}
    with_messages = {s.trace_id for s in spans.values() if s.level == MESSAGE}

    def call_of(span: _Span) -> Call:
        key = (span.trace_id, span.span_id)
        if key not in calls:
            calls[key] = Call(content.session_id, span.trace_id, span.span_id, span.start, span.end, span,
                               _agent(spans, span, memo), history=history)
        return calls[key]

    for span in spans.values():
        if span.level == MESSAGE:
            call_of(span)
    loose: list[Call] = []
    by_span: dict[tuple[bytes, bytes], Call] = {}  # events naming a span that is not stored
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
        call = Call(content.session_id, trace_id, span_id or None, event.time, event.time, logs=[event])
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


def timeline(calls: list[Call]) -> list[tuple[int, int, int, Call]]:
    """(time, phase, order, call): inputs (phase 0) at the call's start, outputs (1) at its end."""
    entries = []
    for order, call in enumerate(sorted(calls, key=lambda c: (c.t_in, c.t_out))):
        entries.append((call.t_in, 0, order, call))
        entries.append((max(call.t_out, call.t_in), 1, order, call))
    entries.sort(key=lambda e: e[:3])
    return entries
