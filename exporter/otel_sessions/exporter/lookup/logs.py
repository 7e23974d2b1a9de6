"""Log lookups: a session's (or a thread's) log records in time order, filtered and paged.

REST (``GET /v1/sessions/{id}/logs``, ``GET /v1/threads/{id}/logs``) and gRPC
(``GetSessionLogs``) build the same :class:`LogQuery`; a bad value raises
:class:`~.params.QueryError` (400 / ``INVALID_ARGUMENT``) naming the parameter.

Records are ordered by their time (``time_unix_nano``, else ``observed_time_unix_nano``),
records of the same time in arrival order. A record's JSON (:func:`record_to_json`)::

    {"time": "2025-01-31T12:00:00.123456789Z", "time_unix_nano": 1738324800123456789,
     "observed_time": ..., "severity_number": 17, "severity_text": "ERROR", "body": "...",
     "event_name": null, "service": "billing", "trace_id": "32 hex" | null,
     "span_id": "16 hex" | null, "attributes": {...}, "resource": {...}}

(plus ``session_id`` in a thread's records). Severity names follow the OpenTelemetry Logs
data model: TRACE 1-4, DEBUG 5-8, INFO 9-12, WARN 13-16, ERROR 17-20, FATAL 21-24.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, NamedTuple

from opentelemetry.proto.logs.v1.logs_pb2 import LogsData

from otel_sessions.exporter.lookup.params import QueryError, parse_count, parse_time
from otel_sessions.exporter.store.logs import plain_value, record_message
from otel_sessions.processor import attributes as attr

__all__ = ["LogQuery", "LogEntry", "LogPage", "entries", "session_page", "thread_page", "SEVERITIES", "DEFAULT_LOG_LIMIT", "MAX_LOG_LIMIT", "LOG_PARAMS",
           "parse_severity", "select", "record_to_json", "to_logs_data", "severity_of"]

DEFAULT_LOG_LIMIT = 1000
MAX_LOG_LIMIT = 10_000
#: Query parameters of the log routes.
LOG_PARAMS = ("min_severity", "start_time", "end_time", "trace_id", "span_id", "contains", "limit", "offset",
              "format")
#: Severity names and the lowest severity_number of each (OpenTelemetry Logs data model).
SEVERITIES: dict[str, int] = {"TRACE": 1, "DEBUG": 5, "INFO": 9, "WARN": 13, "WARNING": 13, "ERROR": 17,
                              "FATAL": 21, "CRITICAL": 21}
_SEVERITY_TEXT = re.compile(r"^([A-Za-z]+)([1-4])?$")


def parse_severity(param: str, text: str | int | None) -> int | None:
    """``WARN``, ``error``, ``INFO3`` or a number 1..24 to the lowest severity_number kept."""
    if text is None or text == "":
        return None
    text = str(text).strip()
    if text.isdigit():
        number = int(text)
        if 1 <= number <= 24:
            return number
    else:
        match = _SEVERITY_TEXT.match(text)
        if match and match.group(1).upper() in SEVERITIES:
            return SEVERITIES[match.group(1).upper()] + int(match.group(2) or 1) - 1
    raise QueryError(param, f"{text[:32]!r} is not a severity: TRACE, DEBUG, INFO, WARN, ERROR, FATAL or 1..24")


def severity_of(record) -> int:
    """A record's severity_number, else (unspecified) the number its severity_text names, else 0."""
    number = record.severity_number
    if 0 < number <= 24:
        return number
    match = _SEVERITY_TEXT.match(record.severity_text or "")
    if match and match.group(1).upper() in SEVERITIES:
        return SEVERITIES[match.group(1).upper()] + int(match.group(2) or 1) - 1
    return 0


def _hex_id(param: str, text: str | None, size: int) -> bytes | None:
    if not text:
        return None
    try:
        value = bytes.fromhex(text)
    except ValueError:
        value = b""
    if len(value) != size or len(text) != 2 * size:
        raise QueryError(param, f"not {2 * size} hex digits: {text[:64]!r}")
    return value


@dataclass(frozen=True)
class LogQuery:
    """A validated log query; times are unix ns."""

    min_severity: int | None = None
    start_ns: int | None = None
    end_ns: int | None = None
    trace_id: bytes | None = None
    span_id: bytes | None = None
    contains: str | None = None  # lowercased
    limit: int = DEFAULT_LOG_LIMIT
    offset: int = 0

    @classmethod
    def from_params(cls, params: Mapping[str, str]) -> LogQuery:
        """Parse REST query parameters; unknown parameters are refused."""
        for key in params:
            if key not in LOG_PARAMS:
                raise QueryError(key, "unknown parameter")
        return cls.build(
            min_severity=params.get("min_severity"),
            start_ns=int(parse_time("start_time", params["start_time"]) * 1000) if params.get("start_time") else None,
            end_ns=int(parse_time("end_time", params["end_time"]) * 1000) if params.get("end_time") else None,
            trace_id=params.get("trace_id"), span_id=params.get("span_id"), contains=params.get("contains"),
            limit=params.get("limit"), offset=params.get("offset"))

    @classmethod
    def build(cls, *, min_severity=None, start_ns=None, end_ns=None, trace_id=None, span_id=None, contains=None,
              limit=None, offset=None) -> LogQuery:
        """Validate already-typed values (REST and gRPC share this)."""
        if start_ns is not None and end_ns is not None and start_ns > end_ns:
            raise QueryError("start_time", "is after end_time")
        return cls(min_severity=parse_severity("min_severity", min_severity), start_ns=start_ns, end_ns=end_ns,
                   trace_id=_hex_id("trace_id", trace_id, 16), span_id=_hex_id("span_id", span_id, 8),
                   contains=contains.lower() if contains else None,
                   limit=parse_count("limit", limit, DEFAULT_LOG_LIMIT, MAX_LOG_LIMIT),
                   offset=parse_count("offset", offset, 0, None))

    def matches(self, entry: LogEntry) -> bool:
        record = entry.record
        if self.min_severity is not None and severity_of(record) < self.min_severity:
            return False
        if self.start_ns is not None and entry.time_ns < self.start_ns:
            return False
        if self.end_ns is not None and entry.time_ns > self.end_ns:
            return False
        if self.trace_id is not None and record.trace_id != self.trace_id:
            return False
        if self.span_id is not None and record.span_id != self.span_id:
            return False
        return self.contains is None or self.contains in record_message(record).lower()


class LogEntry(NamedTuple):
    """One stored record with its resource and scope (and, in a thread, its session)."""

    time_ns: int
    order: int  # arrival order, for records of the same time
    resource: Any  # opentelemetry.proto.resource.v1.Resource
    resource_schema: str
    scope: Any  # InstrumentationScope
    scope_schema: str
    record: Any  # LogRecord
    session_id: str | None


def entries(data: LogsData, session_id: str | None = None, start: int = 0) -> list[LogEntry]:
    """The records of ``data`` as entries, in arrival order."""
    out = []
    order = start
    for rl in data.resource_logs:
        resource = rl.resource  # one object per resource: to_logs_data groups by identity
        for sl in rl.scope_logs:
            scope = sl.scope
            for record in sl.log_records:
                out.append(LogEntry(record.time_unix_nano or record.observed_time_unix_nano, order, resource,
                                    rl.schema_url, scope, sl.schema_url, record, session_id))
                order += 1
    return out


@dataclass
class LogPage:
    """A page of records in time order, and how many matched."""

    entries: list[LogEntry]
    total: int
    limit: int
    offset: int

    def to_json(self) -> dict:
        return {"data": [record_to_json(e) for e in self.entries], "total": self.total, "limit": self.limit,
                "offset": self.offset}


def select(found: Iterable[LogEntry], query: LogQuery) -> LogPage:
    """Filter, sort by time (then arrival) and page ``found``."""
    matched = sorted((e for e in found if query.matches(e)), key=lambda e: (e.time_ns, e.order))
    return LogPage(matched[query.offset:query.offset + query.limit], len(matched), query.limit, query.offset)


def _iso(nanos: int) -> str | None:
    if not nanos:
        return None
    moment = datetime.fromtimestamp(nanos // 1_000_000_000, tz=timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S") + f".{nanos % 1_000_000_000:09d}Z"


def _attributes(attributes) -> dict[str, Any]:
    return {kv.key: plain_value(kv.value) for kv in attributes}


def record_to_json(entry: LogEntry) -> dict[str, Any]:
    """A record as the log routes answer it (see the module docstring)."""
    record = entry.record
    resource = _attributes(entry.resource.attributes)
    out = {
        "time": _iso(entry.time_ns),
        "time_unix_nano": entry.time_ns,
        "observed_time": _iso(record.observed_time_unix_nano),
        "severity_number": record.severity_number,
        "severity_text": record.severity_text,
        "body": plain_value(record.body),
        "event_name": record.event_name or None,
        "service": resource.get(attr.SERVICE_NAME),
        "trace_id": record.trace_id.hex() or None,
        "span_id": record.span_id.hex() or None,
        "attributes": _attributes(record.attributes),
        "resource": resource,
    }
    if entry.session_id is not None:
        out["session_id"] = entry.session_id
    return out


def to_logs_data(found: Iterable[LogEntry]) -> LogsData:
    """The entries as one ``LogsData`` in their order (a resource and scope written once per
    run of records that share them)."""
    out = LogsData()
    last_key = None
    scope_logs = None
    for e in found:
        key = (id(e.resource), id(e.scope))
        if key != last_key:
            rl = out.resource_logs.add(schema_url=e.resource_schema)
            rl.resource.CopyFrom(e.resource)
            scope_logs = rl.scope_logs.add(schema_url=e.scope_schema)
            scope_logs.scope.CopyFrom(e.scope)
            last_key = key
        scope_logs.log_records.add().CopyFrom(e.record)
    return out


async def session_page(store, session_id: str, query: LogQuery) -> LogPage | None:
    """A page of a session's records (``store``: a :class:`~.store.sessions.SessionStore`);
    None when the session is unknown."""
    data = await store.logs.get_logs(session_id)
    if data is None:
        return None
    return select(entries(data), query)


async def thread_page(store, queries, thread_id: str, query: LogQuery) -> LogPage | None:
    """A page of the records of a thread's sessions (at most its first 500 sessions, in start
    order), merged in time order, each with its ``session_id``; None when the thread is unknown."""
    result = await queries.thread(thread_id)
    if result is None:
        return None
    ids = [s.id for s in result.sessions]
    found: list[LogEntry] = []
    for session_id, data in zip(ids, await store.logs.get_many(ids)):
        if data is not None:
            found += entries(data, session_id, start=len(found))
    return select(found, query)
