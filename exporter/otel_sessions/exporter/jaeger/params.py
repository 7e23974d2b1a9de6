"""Query parameters of the Jaeger API's trace search, parsed as Jaeger's query service does.

``GET /api/traces`` takes ``service``, ``operation``, ``tags`` (a JSON object, repeatable),
``tag`` (``key:value``, repeatable), ``start``/``end`` (µs since the epoch), ``lookback``,
``limit``, ``minDuration``/``maxDuration`` (Go durations such as ``1.2s``, ``100ms``) and
``traceID`` (repeatable). A parameter Jaeger would refuse raises :class:`BadQuery` (HTTP 400
through the error table). :meth:`TraceQuery.span_matches` is the per-span test of a search.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass, field
from typing import Any

from otel_sessions.exporter.errors import BadRequest

__all__ = ["BadQuery", "TraceQuery", "parse_go_duration", "parse_trace_id", "DEFAULT_LIMIT", "MAX_LIMIT"]

#: Traces a search returns when ``limit`` is absent, zero or negative.
DEFAULT_LIMIT = 100
#: Traces a search returns at most.
MAX_LIMIT = 1500


class BadQuery(BadRequest):
    """A query parameter Jaeger would refuse (HTTP 400)."""


_GO_DURATION = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)")
_UNIT_US = {"ns": 0.001, "us": 1.0, "µs": 1.0, "μs": 1.0, "ms": 1000.0, "s": 1e6, "m": 60e6, "h": 3600e6}


def parse_go_duration(text: str) -> float:
    """A Go duration (``1.2s``, ``100ms``, ``1m30s``) in microseconds."""
    text = text.strip()
    pos, total = 0, 0.0
    for match in _GO_DURATION.finditer(text):
        if match.start() != pos:
            break
        total += float(match.group(1)) * _UNIT_US[match.group(2)]
        pos = match.end()
    if pos != len(text) or not text:
        raise BadQuery(f"cannot parse duration {text!r}: use Go durations such as 1.2s or 100ms")
    return total


@dataclass
class TraceQuery:
    service: str | None = None
    operation: str | None = None
    tags: dict[str, str] = field(default_factory=dict)
    start_us: int | None = None
    end_us: int | None = None
    limit: int = DEFAULT_LIMIT
    min_duration_us: float | None = None
    max_duration_us: float | None = None
    trace_ids: list[bytes] = field(default_factory=list)

    @classmethod
    def parse(cls, params) -> TraceQuery:
        q = cls(service=params.get("service") or None, operation=params.get("operation") or None)
        for raw in params.getall("tags", []):
            if not raw.strip():
                continue
            try:
                tags = json.loads(raw)
            except ValueError as exc:
                raise BadQuery(f"malformed 'tags' parameter, cannot unmarshal JSON: {exc}") from None
            if not isinstance(tags, dict):
                raise BadQuery("malformed 'tags' parameter: expecting a JSON object")
            for key, value in tags.items():
                q.tags[str(key)] = _tag_text(value)
        for raw in params.getall("tag", []):
            key, sep, value = raw.partition(":")
            if not sep:
                raise BadQuery(f"malformed 'tag' parameter, expecting key:value, got {raw!r}")
            q.tags[key] = value
        for name in ("start", "end"):
            raw = params.get(name)
            if raw:
                try:
                    setattr(q, f"{name}_us", int(raw))
                except ValueError:
                    raise BadQuery(f"cannot parse '{name}' {raw!r}: expecting microseconds since the epoch") from None
        lookback = params.get("lookback")
        if q.start_us is None and lookback and lookback != "custom":
            end = q.end_us if q.end_us is not None else int(time.time() * 1e6)
            q.start_us = int(end - parse_go_duration(lookback))
        raw_limit = params.get("limit")
        if raw_limit:
            try:
                q.limit = int(raw_limit)
            except ValueError:
                raise BadQuery(f"cannot parse 'limit' {raw_limit!r}") from None
            if q.limit <= 0:
                q.limit = DEFAULT_LIMIT
        q.limit = min(q.limit, MAX_LIMIT)
        for name in ("minDuration", "maxDuration"):
            raw = params.get(name)
            if raw:
                value = parse_go_duration(raw)
                if name == "minDuration":
                    q.min_duration_us = value
                else:
                    q.max_duration_us = value
        if q.min_duration_us and q.max_duration_us and q.max_duration_us < q.min_duration_us:
            raise BadQuery("'maxDuration' should be greater than 'minDuration'")
        if q.operation and not q.service:
            raise BadQuery("parameter 'service' is required when 'operation' is given")
        for raw in params.getall("traceID", []):
            q.trace_ids.append(parse_trace_id(raw))
        return q

    def span_matches(self, span: dict[str, Any], service: str, process_tags: list, other_tags: dict) -> bool:
        if self.service and self.service != service:
            return False
        if self.operation and span["operationName"] != self.operation:
            return False
        duration = span["duration"]
        if self.min_duration_us is not None and duration < self.min_duration_us:
            return False
        if self.max_duration_us is not None and duration > self.max_duration_us:
            return False
        start = span["startTime"]
        if self.start_us is not None and start < self.start_us:
            return False
        if self.end_us is not None and start > self.end_us:
            return False
        if other_tags:
            values: dict[str, set[str]] = {}
            for kv in (*span["tags"], *process_tags, *(f for log_ in span["logs"] for f in log_["fields"])):
                values.setdefault(kv["key"], set()).add(_tag_text(kv["value"]))
            for key, wanted in other_tags.items():
                if wanted not in values.get(key, ()):
                    return False
        return True


def _tag_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def parse_trace_id(text: str) -> bytes:
    """A trace id in hex (Jaeger may drop leading zeros): 16 bytes."""
    text = text.strip().lower()
    if not 0 < len(text) <= 32 or not re.fullmatch(r"[0-9a-f]+", text):
        raise BadQuery(f"cannot parse traceID {text!r}: expecting up to 32 hex digits")
    return bytes.fromhex(text.rjust(32, "0"))
