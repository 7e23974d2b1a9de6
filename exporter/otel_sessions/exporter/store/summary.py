"""Session and trace summaries as read from the store, and the status rules.

Status is evaluated at read time from the summary (``docs/storage.md``, status), so it moves from ``active`` to
``idle`` to ``abandoned`` with the clock, without writes:

1. ``failed``     a root span of the session ended with status ERROR;
2. ``escalated``  a span carried ``session.escalated=true`` (handed to a human);
3. ``completed``  the session was ended explicitly (``session.end`` event / ``end_session()``);
4. otherwise by the time since the last span or log record arrived: ``active`` (< idle-after),
   ``idle`` (< abandon-after), ``abandoned``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from otel_sessions.exporter.store.codec import TraceFigures
from otel_sessions.exporter.store.schema import LABEL_KINDS, METADATA_PREFIX
from otel_sessions.exporter.store.schema import Field as F

__all__ = ["SessionSummary", "TraceSummary", "STATUSES", "session_status"]

STATUSES = ("active", "idle", "completed", "failed", "abandoned", "escalated")


def session_status(fields: dict[str, str], now_ms: float, idle_after_s: float, abandon_after_s: float) -> str:
    if fields.get(F.FAILED) == "1":
        return "failed"
    if fields.get(F.ESCALATED) == "1":
        return "escalated"
    if fields.get(F.ENDED) == "1":
        return "completed"
    quiet_ms = now_ms - float(fields.get(F.SEEN) or 0)
    if quiet_ms < idle_after_s * 1000:
        return "active"
    if quiet_ms < abandon_after_s * 1000:
        return "idle"
    return "abandoned"


def _iso(micros: float) -> str | None:
    if not micros:
        return None
    return datetime.fromtimestamp(micros / 1e6, tz=timezone.utc).isoformat(timespec="microseconds").replace(
        "+00:00", "Z"
    )


@dataclass
class TraceSummary:
    """One trace of a session: id, root span name, times, counts, tokens."""

    trace_id: str
    root_name: str
    start_us: float
    end_us: float
    span_count: int
    error_count: int
    input_tokens: int
    output_tokens: int
    cost_usd: float

    @classmethod
    def from_figures(cls, trace_id: bytes, f: TraceFigures) -> TraceSummary:
        tin, tout, cost = f.usage
        return cls(trace_id.hex(), f.root_name, f.start_us, f.end_us, f.spans, f.errors, tin, tout, cost)

    def to_json(self) -> dict[str, Any]:
        return {
            "trace_id": self.trace_id,
            "root_name": self.root_name,
            "start_time": _iso(self.start_us),
            "end_time": _iso(self.end_us),
            "duration_ms": round((self.end_us - self.start_us) / 1000, 3),
            "span_count": self.span_count,
            "error_count": self.error_count,
            "error": self.error_count > 0,
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "total_tokens": self.input_tokens + self.output_tokens,
            "cost_usd": round(self.cost_usd, 10),
        }


@dataclass
class SessionSummary:
    """A session as the store keeps it (the ``Session`` JSON shape of ``docs/interface.md``)."""

    id: str
    name: str | None
    user_id: str | None
    thread_id: str | None
    previous_id: str | None
    status: str
    start_us: float
    end_us: float
    last_seen_ms: float
    trace_count: int
    span_count: int
    error_count: int
    input_tokens: int
    output_tokens: int
    cost_usd: float
    cost_estimated: bool
    models: list[str] = field(default_factory=list)
    services: list[str] = field(default_factory=list)
    agents: list[str] = field(default_factory=list)
    tools: list[str] = field(default_factory=list)
    environments: list[str] = field(default_factory=list)
    metadata: dict[str, str] = field(default_factory=dict)
    spans_dropped: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    reasoning_tokens: int = 0
    log_count: int = 0
    error_log_count: int = 0
    first_error_log_message: str | None = None
    logs_dropped: int = 0
    traces: list[TraceSummary] | None = None
    #: ``lookup/figures.py`` ConversationFigures, when the lookup filled them (list and detail)
    conversation: Any = None

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens

    @property
    def duration_ms(self) -> float:
        return max(0.0, (self.end_us - self.start_us) / 1000)

    @property
    def truncated(self) -> bool:
        return self.spans_dropped > 0

    @classmethod
    def from_redis(cls, raw: dict[bytes, bytes], now_ms: float, idle_after_s: float,
                   abandon_after_s: float) -> SessionSummary:
        fields = {k.decode(errors="replace"): v.decode(errors="replace") for k, v in raw.items()}
        labels: dict[str, list[str]] = {prefix: [] for prefix in LABEL_KINDS.values()}
        metadata = {}
        for key, value in fields.items():
            kind, sep, rest = key.partition(":")
            if not sep:
                continue
            if kind + sep == METADATA_PREFIX:
                metadata[rest] = value
            elif kind + sep in labels:
                labels[kind + sep].append(rest)
        return cls(
            id=fields.get(F.ID, ""),
            name=fields.get(F.NAME),
            user_id=fields.get(F.USER),
            thread_id=fields.get(F.THREAD),
            previous_id=fields.get(F.PREVIOUS),
            status=session_status(fields, now_ms, idle_after_s, abandon_after_s),
            start_us=float(fields.get(F.START) or 0),
            end_us=float(fields.get(F.END) or 0),
            last_seen_ms=float(fields.get(F.SEEN) or 0),
            trace_count=int(fields.get(F.TRACES) or 0),
            span_count=int(fields.get(F.SPANS) or 0),
            error_count=int(fields.get(F.ERRORS) or 0),
            input_tokens=int(fields.get(F.INPUT) or 0),
            output_tokens=int(fields.get(F.OUTPUT) or 0),
            cost_usd=float(fields.get(F.COST) or 0),
            cost_estimated=fields.get(F.COST_ESTIMATED) == "1",
            models=sorted(labels[LABEL_KINDS["model"]]),
            services=sorted(labels[LABEL_KINDS["service"]]),
            agents=sorted(labels[LABEL_KINDS["agent"]]),
            tools=sorted(labels[LABEL_KINDS["tool"]]),
            environments=sorted(labels[LABEL_KINDS["environment"]]),
            metadata=metadata,
            spans_dropped=int(fields.get(F.DROPPED) or 0),
            cache_read_tokens=int(fields.get(F.CACHE_READ) or 0),
            cache_write_tokens=int(fields.get(F.CACHE_WRITE) or 0),
            reasoning_tokens=int(fields.get(F.REASONING) or 0),
            log_count=int(fields.get(F.LOGS) or 0),
            error_log_count=int(fields.get(F.LOG_ERRORS) or 0),
            first_error_log_message=fields.get(F.LOG_ERROR_MESSAGE),
            logs_dropped=int(fields.get(F.LOGS_DROPPED) or 0),
        )

    def to_json(self) -> dict[str, Any]:
        """The ``Session`` JSON of ``docs/interface.md`` (plus ``traces`` when loaded)."""
        out: dict[str, Any] = {
            "id": self.id,
            "name": self.name,
            "user_id": self.user_id,
            "thread_id": self.thread_id,
            "previous_id": self.previous_id,
            "status": self.status,
            "start_time": _iso(self.start_us),
            "end_time": _iso(self.end_us),
            "duration_ms": round(self.duration_ms, 3),
            "last_activity": _iso(self.last_seen_ms * 1000),
            "trace_count": self.trace_count,
            "span_count": self.span_count,
            "error_count": self.error_count,
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "total_tokens": self.total_tokens,
            "cache_read_tokens": self.cache_read_tokens,
            "cache_write_tokens": self.cache_write_tokens,
            "reasoning_tokens": self.reasoning_tokens,
            "cost_usd": round(self.cost_usd, 10),
            "cost_estimated": self.cost_estimated,
            "models": self.models,
            "services": self.services,
            "agents": self.agents,
            "tools": self.tools,
            "environments": self.environments,
            "metadata": self.metadata,
            "truncated": self.truncated,
            "spans_dropped": self.spans_dropped,
            "log_count": self.log_count,
            "error_log_count": self.error_log_count,
            "first_error_log_message": self.first_error_log_message,
            "logs_dropped": self.logs_dropped,
        }
        out["conversation"] = self.conversation.to_json() if self.conversation is not None else None
        if self.traces is not None:
            out["traces"] = [t.to_json() for t in self.traces]
        return out
