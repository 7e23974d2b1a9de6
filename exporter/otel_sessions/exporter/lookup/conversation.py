"""The conversation lookups over the store: a session's or a thread's messages, one span.

They read what the store keeps (a session's spans; a thread's sessions from its index) and
hand it to the pure functions of ``transcript.py`` and ``span_details.py``. A thread's
sessions are read a few at a time, oldest first, and reading stops once the page is built.
Unknown ids raise :class:`~otel_sessions.exporter.errors.NotFound` (404 / ``NOT_FOUND``); a
bad parameter :class:`~otel_sessions.exporter.lookup.params.QueryError` (400).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from otel_sessions.exporter.errors import NotFound
from otel_sessions.exporter.lookup.params import QueryError, parse_count
from otel_sessions.exporter.lookup.queries import SessionQueries
from otel_sessions.exporter.lookup.span_details import find_spans, span_details
from otel_sessions.exporter.lookup.transcript import (
    DEFAULT_LIMIT,
    MAX_LIMIT,
    SessionContent,
    Transcript,
    TranscriptBuilder,
    log_records,
)
from otel_sessions.exporter.store.sessions import SessionStore

__all__ = ["Conversations", "MESSAGE_PARAMS", "page_params", "parse_hex_id"]

#: Query parameters of the message routes.
MESSAGE_PARAMS = ("limit", "offset")
_THREAD_BATCH = 16  # sessions of a thread read per round trip
_THREAD_SESSIONS = 500  # sessions of a thread read at most (the thread index's page)


def page_params(params: Mapping[str, str]) -> tuple[int, int]:
    """``limit`` (default 500, at most 2,000) and ``offset`` of a message route; unknown
    parameters are refused."""
    for key in params:
        if key not in MESSAGE_PARAMS:
            raise QueryError(key, "unknown parameter")
    return (parse_count("limit", params.get("limit"), DEFAULT_LIMIT, MAX_LIMIT),
            parse_count("offset", params.get("offset"), 0, None))


def parse_hex_id(param: str, text: str, size: int) -> bytes:
    """A span id (``size`` 8) or trace id (16) in hex; shorter ids are left-padded with zeros."""
    text = text.strip().lower()
    if not text or len(text) > 2 * size or any(c not in "0123456789abcdef" for c in text):
        raise QueryError(param, f"not a {'span' if size == 8 else 'trace'} id of {2 * size} hex digits: "
                                f"{text[:40]!r}")
    return bytes.fromhex(text.rjust(2 * size, "0"))


class Conversations:
    """Messages and span details over one :class:`SessionStore` (and its thread index)."""

    def __init__(self, store: SessionStore, queries: SessionQueries | None = None) -> None:
        self.store = store
        self.queries = queries or SessionQueries(store)

    async def session_messages(self, session_id: str, limit: int = DEFAULT_LIMIT, offset: int = 0) -> Transcript:
        data = await self.store.get_spans(session_id)
        if data is None:
            raise NotFound(f"no session {session_id!r}")
        builder = TranscriptBuilder(limit, offset)
        builder.add_session(SessionContent(session_id, data, await self._logs(session_id)))
        return builder.result()

    async def _logs(self, session_id: str) -> list:
        """The session's stored log records (GenAI events sent through the Logs API)."""
        stored = await self.store.logs.get_logs(session_id)
        return list(log_records(stored)) if stored is not None else []

    async def thread_messages(self, thread_id: str, limit: int = DEFAULT_LIMIT, offset: int = 0) -> Transcript:
        """The messages of every session of the thread, in the thread's (start) order."""
        listed = await self.queries.thread(thread_id, limit=_THREAD_SESSIONS)
        if listed is None:
            raise NotFound(f"no thread {thread_id!r}")
        ids = [s.id for s in listed.sessions]
        builder = TranscriptBuilder(limit, offset)
        for first in range(0, len(ids), _THREAD_BATCH):
            batch = ids[first:first + _THREAD_BATCH]
            for session_id, data in zip(batch, await self.store.get_spans_of(batch)):
                if data is not None and not builder.full:
                    builder.add_session(SessionContent(session_id, data, await self._logs(session_id)))
            if builder.full:
                break
        return builder.result(more=listed.total > len(ids) or listed.partial)

    async def span(self, session_id: str, span_id: str, trace_id: str | None = None) -> dict[str, Any]:
        """The ``SpanDetails`` of a stored span; 404 when the session or the span is unknown, 400
        when the span id is in several traces and no ``trace_id`` tells which."""
        wanted_span = parse_hex_id("span_id", span_id, 8)
        wanted_trace = parse_hex_id("trace_id", trace_id, 16) if trace_id else None
        data = await self.store.get_spans(session_id)
        if data is None:
            raise NotFound(f"no session {session_id!r}")
        found = find_spans(data, wanted_span, wanted_trace)
        if not found:
            raise NotFound(f"no span {span_id!r} in session {session_id!r}")
        if len(found) > 1:
            raise QueryError("trace_id", f"span {span_id!r} is in {len(found)} traces of the session: give trace_id")
        return span_details(*found[0], session_id=session_id)
