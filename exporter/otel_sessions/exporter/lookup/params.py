"""Session list queries: parameters, validation, and the filters applied to a summary.

REST (``GET /v1/sessions``, ``GET /v1/users/{id}/sessions``) and gRPC (``ListSessions``)
build the same :class:`SessionQuery`; a bad value raises :class:`QueryError` (400 /
``INVALID_ARGUMENT``) naming the parameter.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone

from otel_sessions.exporter.errors import BadRequest
from otel_sessions.exporter.store.schema import SORT_INDEXES
from otel_sessions.exporter.store.summary import STATUSES, SessionSummary

__all__ = ["DEFAULT_LIMIT", "MAX_LIMIT", "MAX_CANDIDATES", "SORT_KEYS", "LIST_PARAMS", "QueryError", "SessionQuery",
           "parse_time", "parse_count"]

DEFAULT_LIMIT = 50
MAX_LIMIT = 500
#: Sessions examined at most for filters that no index serves (and for a user's or thread's set).
MAX_CANDIDATES = 2000
#: Longest ``q`` text filter, characters.
MAX_TEXT = 256
#: Sort keys: the store's sort indexes, and ``last_activity`` (the ``seen`` index).
SORT_KEYS: tuple[str, ...] = (*SORT_INDEXES, "last_activity")
#: Query parameters of ``GET /v1/sessions`` (besides ``metadata.<key>``).
LIST_PARAMS = ("limit", "offset", "user_id", "thread_id", "name", "status", "service", "model", "agent", "tool",
               "environment", "q", "start_time", "end_time", "sort_by", "sort_order")
_METADATA = "metadata."


class QueryError(BadRequest):
    """A bad lookup parameter, named by ``parameter`` (REST 400, gRPC INVALID_ARGUMENT)."""

    def __init__(self, param: str, problem: str) -> None:
        super().__init__(problem, param)


def parse_time(param: str, text: str) -> float:
    """RFC 3339 (``2025-01-31T12:00:00Z``) or unix milliseconds to unix microseconds."""
    text = text.strip()
    if re.fullmatch(r"\d{1,16}(\.\d+)?", text):
        return float(text) * 1000
    try:
        moment = datetime.fromisoformat(text.replace("z", "Z").replace("Z", "+00:00"))
    except ValueError:
        raise QueryError(param, f"{text[:64]!r} is neither RFC 3339 (2025-01-31T12:00:00Z) nor unix ms") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.timestamp() * 1e6


def parse_count(param: str, text: str | int | None, default: int, maximum: int | None) -> int:
    if text is None or text == "":
        return default
    try:
        value = int(text)
    except (TypeError, ValueError):
        raise QueryError(param, f"not a whole number: {str(text)[:32]!r}") from None
    if value < 0:
        raise QueryError(param, "must not be negative")
    if maximum is not None and value > maximum:
        raise QueryError(param, f"at most {maximum} (got {value})")
    return value


@dataclass(frozen=True)
class SessionQuery:
    """A validated list query. Time bounds are unix µs and bound the session's start."""

    limit: int = DEFAULT_LIMIT
    offset: int = 0
    user_id: str | None = None
    thread_id: str | None = None
    name: str | None = None
    statuses: tuple[str, ...] = ()
    service: str | None = None
    model: str | None = None
    agent: str | None = None
    tool: str | None = None
    environment: str | None = None
    q: str | None = None
    start_us: float | None = None
    end_us: float | None = None
    metadata: tuple[tuple[str, str], ...] = ()
    sort_by: str = "start"
    descending: bool = True

    @classmethod
    def from_params(cls, params: Mapping[str, str], *, allow: tuple[str, ...] = LIST_PARAMS) -> SessionQuery:
        """Parse REST query parameters; unknown parameters are refused (typos fail loudly)."""
        metadata = []
        for key in params:
            if key.startswith(_METADATA) and len(key) > len(_METADATA):
                metadata.append((key[len(_METADATA):], params[key]))
            elif key not in allow:
                raise QueryError(key, "unknown parameter")
        statuses = tuple(s.strip() for s in (params.get("status") or "").split(",") if s.strip())
        return cls.build(
            limit=params.get("limit"), offset=params.get("offset"),
            user_id=params.get("user_id"), thread_id=params.get("thread_id"), name=params.get("name"),
            statuses=statuses, service=params.get("service"), model=params.get("model"),
            agent=params.get("agent"), tool=params.get("tool"), environment=params.get("environment"),
            q=params.get("q"),
            start_us=parse_time("start_time", params["start_time"]) if params.get("start_time") else None,
            end_us=parse_time("end_time", params["end_time"]) if params.get("end_time") else None,
            metadata=metadata, sort_by=params.get("sort_by"), sort_order=params.get("sort_order"),
        )

    @classmethod
    def build(cls, *, limit=None, offset=None, user_id=None, thread_id=None, name=None, statuses=(),
              service=None, model=None, start_us=None, end_us=None, metadata=(), sort_by=None,
              sort_order=None, agent=None, tool=None, environment=None, q=None) -> SessionQuery:
        """Validate already-typed values (REST and gRPC share this)."""
        for status in statuses:
            if status not in STATUSES:
                raise QueryError("status", f"{status[:32]!r} is not one of {', '.join(STATUSES)}")
        sort_by = sort_by or "start"
        if sort_by not in SORT_KEYS:
            raise QueryError("sort_by", f"{sort_by[:32]!r} is not one of {', '.join(SORT_KEYS)}")
        order = (sort_order or "desc").lower()
        if order not in ("asc", "desc"):
            raise QueryError("sort_order", f"{order[:32]!r} is not asc or desc")
        if start_us is not None and end_us is not None and start_us > end_us:
            raise QueryError("start_time", "is after end_time")
        for key, _value in metadata:
            if not key:
                raise QueryError("metadata", "empty key")
        if q is not None and len(q) > MAX_TEXT:
            raise QueryError("q", f"at most {MAX_TEXT} characters")
        return cls(
            limit=parse_count("limit", limit, DEFAULT_LIMIT, MAX_LIMIT),
            offset=parse_count("offset", offset, 0, None),
            user_id=user_id or None, thread_id=thread_id or None, name=name or None,
            statuses=tuple(statuses), service=service or None, model=model or None,
            agent=agent or None, tool=tool or None, environment=environment or None,
            q=q.strip().lower() if q and q.strip() else None,
            start_us=start_us, end_us=end_us, metadata=tuple(metadata), sort_by=sort_by,
            descending=order == "desc",
        )

    # --- evaluation on a summary ------------------------------------------------------------
    def post_filtered(self) -> bool:
        """True when a filter needs the summary (no index serves it)."""
        return bool(self.name or self.statuses or self.service or self.model or self.metadata or self.agent
                    or self.tool or self.environment or self.q)

    def matches(self, s: SessionSummary, text: bool = True) -> bool:
        """Every filter on ``s`` (ids and times included: candidates may come from any index);
        with ``text`` False, every filter but ``q``."""
        if self.user_id is not None and s.user_id != self.user_id:
            return False
        if self.thread_id is not None and s.thread_id != self.thread_id:
            return False
        if self.start_us is not None and s.start_us < self.start_us:
            return False
        if self.end_us is not None and s.start_us > self.end_us:
            return False
        if self.name is not None and self.name.lower() not in (s.name or "").lower():
            return False
        if self.statuses and s.status not in self.statuses:
            return False
        if self.service is not None and self.service not in s.services:
            return False
        if self.model is not None and not any(m == self.model or m.startswith(self.model) for m in s.models):
            return False
        if self.agent is not None and self.agent not in s.agents:
            return False
        if self.tool is not None and self.tool not in s.tools:
            return False
        if self.environment is not None and self.environment not in s.environments:
            return False
        if text and self.q is not None and not mentions(s, self.q):
            return False
        return all(s.metadata.get(key) == value for key, value in self.metadata)


def mentions(s: SessionSummary, text: str) -> bool:
    """``text`` (lower case) is in the session's name, id, user or one of its labels (models,
    services, agents, tools, environments), case-insensitively; or in its first user or last
    assistant message when its conversation figures are filled (``lookup/figures.py``)."""
    fields = (s.name, s.id, s.user_id, *s.models, *s.services, *s.agents, *s.tools, *s.environments)
    return (any(text in value.lower() for value in fields if value)
            or (s.conversation is not None and s.conversation.mentions(text)))
