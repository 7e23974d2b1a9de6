"""Typed records between the ingest path and the store: what a write takes and what it answers.

The ingest side builds :class:`SessionWrite` and :class:`TraceJoin` records; the store turns
them into script calls and decodes the scripts' replies into :class:`SessionReply` and
:class:`JoinReply`. Neither side reaches into the other's objects.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, NamedTuple

__all__ = ["SessionWrite", "LogWrite", "SessionFigures", "SessionReply", "TraceJoin", "JoinReply", "WriteResult"]


class SessionWrite(NamedTuple):
    """One session's part of a request, ready for ``write_session.lua``.

    Times are µs since the epoch; ``counters`` are (summary field, amount) pairs added to the
    summary (``schema.COUNTERS``: integers, cost in USD); ``markers`` are the usage markers of
    the traces whose model calls carry usage and ``aggregates`` (marker, input tokens, output
    tokens, cost) the largest aggregating-span usage of traces whose do not
    (``docs/conventions.md``, usage); ``once`` holds the first-value-wins summary fields (id,
    name, user, thread, prev, ``x:<metadata key>``) and ``labels`` the label fields
    (``m:model`` ...), each its own argument."""

    session_id: str
    span_count: int
    span_digests: bytes  # span_count x 8 bytes
    trace_digests: bytes  # 8 bytes per distinct trace
    markers: bytes  # 8 bytes per trace whose model calls carry usage
    aggregates: tuple[tuple[bytes, int, int, float], ...]
    counters: tuple[tuple[str, int | float], ...]
    start_us: int
    end_us: int
    flags: int  # schema.SessionFlags
    once: tuple[tuple[str, str], ...]
    labels: tuple[str, ...]
    chunk: bytes
    # the cross-session indexes this session belongs to (None: not named in this write)
    user_id: str | None
    thread_id: str | None


class LogWrite(NamedTuple):
    """One session's log records of a request, ready for ``write_logs.lua``.

    ``digests``: 8 bytes per distinct record (a digest of its serialized bytes); times are µs
    since the epoch (the records' time, else their observed time); ``errors``: records with
    ``severity_number`` >= 17 (ERROR); ``error_message``: the first error record's message
    (<= 512 characters, "" when none); ``once`` and ``labels`` as in :class:`SessionWrite`."""

    session_id: str
    record_count: int
    digests: bytes
    errors: int
    error_message: str
    start_us: int
    end_us: int
    once: tuple[tuple[str, str], ...]
    labels: tuple[str, ...]
    chunk: bytes
    user_id: str | None
    thread_id: str | None


class SessionFigures(NamedTuple):
    """A session's figures after a write: what the sort indexes keep."""

    start_us: int
    end_us: int
    spans: int
    traces: int
    tokens: int
    cost: str  # decimal, as the summary keeps it
    seen_ms: int


class SessionReply(NamedTuple):
    """The answer of ``write_session.lua`` (and of ``write_logs.lua``: the same shape, counted
    in log records).

    ``status`` > 0: that many spans stored; 0: every span was stored before; -1: some were,
    nothing was written, and ``new_mask`` (one byte per span, ``b"1"`` = new) says which to
    send again. ``figures`` is set for status >= 0."""

    status: int
    new_mask: bytes | None
    figures: SessionFigures | None

    @classmethod
    def decode(cls, reply: list[Any]) -> SessionReply:
        status = int(reply[0])
        if status < 0:
            return cls(status, bytes(reply[1]), None)
        start, end, spans, traces, tokens, cost, seen = reply[1:8]
        cost = cost.decode() if isinstance(cost, bytes) else str(cost)
        return cls(status, None, SessionFigures(int(start), int(end), int(spans), int(traces), int(tokens), cost,
                                                int(seen)))


@dataclass
class TraceJoin:
    """Trace joining asked of one write: ``claims`` trace id -> the session the request names
    for it; ``parked`` trace id -> a chunk of spans whose trace named no session here."""

    claims: dict[bytes, str] = field(default_factory=dict)
    parked: dict[bytes, bytes] = field(default_factory=dict)
    #: trace id -> a log chunk of records whose trace named no session here
    parked_logs: dict[bytes, bytes] = field(default_factory=dict)


@dataclass
class JoinReply:
    """What joining found.

    ``owners``: trace id -> its session, for every claim and every parked trace that turned
    out to have one (the caller writes those spans into it); ``adopt``: (session, chunks) of
    spans parked earlier for a trace now claimed (the caller writes them into the session);
    ``parked``: traces whose spans were parked now; ``trims``: lists of parked spans to trim
    once the adopted spans are stored (pass them to ``SessionStore.finish``). ``adopt_logs``,
    ``parked_logs`` and ``log_trims`` are the same for log records waiting by trace."""

    owners: dict[bytes, str] = field(default_factory=dict)
    adopt: list[tuple[str, list[bytes]]] = field(default_factory=list)
    parked: set[bytes] = field(default_factory=set)
    trims: list[tuple[bytes, int]] = field(default_factory=list)
    adopt_logs: list[tuple[str, list[bytes]]] = field(default_factory=list)
    parked_logs: set[bytes] = field(default_factory=set)
    log_trims: list[tuple[bytes, int]] = field(default_factory=list)


@dataclass
class WriteResult:
    """What ingesting one request did, in spans and log records; ``trace_owners``: trace id ->
    session for every trace whose session the write learnt."""

    sessions: int = 0
    spans_new: int = 0
    spans_duplicate: int = 0
    spans_parked: int = 0
    spans_joined: int = 0
    logs_new: int = 0
    logs_duplicate: int = 0
    logs_parked: int = 0
    logs_joined: int = 0
    trace_owners: dict[bytes, str] = field(default_factory=dict)
