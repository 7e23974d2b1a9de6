"""From an OTLP export request to per-session write groups: the receiver's hot path.

One pass over the spans of a request extracts what the store needs per span (ids, times,
errors, tokens, cost, model, kind labels) and groups the serialized spans by session:

* a span naming a session (``session.id`` or an alias) goes to it;
* a span without one goes to the session its trace names elsewhere in the request, else it
  is an *orphan* of its trace, resolved by the store (trace joining).

A group's spans become one :class:`~.records.SessionWrite`: 8-byte span and trace digests
(idempotency and trace counting in the store's script), totals computed here, and one
compressed chunk with the spans and their per-trace figures, so a whole session's part of a
batch is one script call. Attribute names and their precedence: ``docs/conventions.md``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable

from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans

from otel_sessions.exporter.ingest.groups import Batch, Group, SpanRecord, span_digest
from otel_sessions.exporter.ingest.pricing import PriceTable
from otel_sessions.exporter.store.schema import LABEL_KINDS, SpanFlags
from otel_sessions.processor import attributes as attr

__all__ = ["BatchBuilder"]

# plain ints on the hot path (IntFlag arithmetic allocates)
_ERROR = int(SpanFlags.ERROR)
_ROOT = int(SpanFlags.ROOT)
_ESTIMATED = int(SpanFlags.COST_ESTIMATED)
_AGGREGATE = int(SpanFlags.AGGREGATE)
_MODEL, _SERVICE, _AGENT, _TOOL = (LABEL_KINDS[k] for k in ("model", "service", "agent", "tool"))
_ENVIRONMENT = LABEL_KINDS["environment"]
#: Resource attributes naming the deployment environment, in precedence order (the second is
#: the name before semantic conventions 1.27).
_ENVIRONMENT_KEYS = ("deployment.environment.name", "deployment.environment")

_STATUS_ERROR = 2
_ZERO_TRACE = bytes(16)
_ZERO_SPAN = bytes(8)

# Attribute key -> (slot, rank). Lower rank wins within a slot.
_S_SESSION, _S_THREAD, _S_USER, _S_NAME, _S_IN, _S_OUT, _S_COST, _S_MODEL = range(8)
_S_AGENT, _S_TOOL, _S_PREVIOUS, _S_ESCALATED, _S_CACHE_READ, _S_CACHE_WRITE, _S_REASONING = range(8, 15)
_S_OPERATION, _S_OI_KIND, _S_TL_KIND = range(15, 18)
_N_SLOTS = 18
_SLOTS: dict[str, tuple[int, int]] = {}
for _slot, _names in (
    (_S_SESSION, attr.SESSION_ID_ALIASES[:-1]),  # the conversation id is a fallback, handled below
    (_S_THREAD, attr.THREAD_ID_ALIASES),
    (_S_USER, attr.USER_ID_ALIASES),
    (_S_NAME, attr.SESSION_NAME_ALIASES),
    (_S_IN, attr.INPUT_TOKENS),
    (_S_OUT, attr.OUTPUT_TOKENS),
    (_S_COST, attr.COST_USD),
    (_S_MODEL, attr.MODEL),
    (_S_AGENT, (attr.AGENT_NAME,)),
    (_S_TOOL, (attr.TOOL_NAME,)),
    (_S_PREVIOUS, (attr.SESSION_PREVIOUS_ID,)),
    (_S_ESCALATED, (attr.SESSION_ESCALATED,)),
    (_S_CACHE_READ, attr.CACHE_READ_TOKENS),
    (_S_CACHE_WRITE, attr.CACHE_WRITE_TOKENS),
    (_S_REASONING, attr.REASONING_TOKENS),
    (_S_OPERATION, (attr.OPERATION_NAME,)),
    (_S_OI_KIND, (attr.OPENINFERENCE_SPAN_KIND,)),
    (_S_TL_KIND, (attr.TRACELOOP_SPAN_KIND,)),
):
    for _rank, _name in enumerate(_names):
        _SLOTS.setdefault(_name, (_slot, _rank))
_METADATA_PREFIX = attr.SESSION_METADATA_PREFIX
_METADATA_PREFIX_LEN = len(_METADATA_PREFIX)


def _text(value) -> str | None:
    """An AnyValue as an id string (strings as they are, integers in decimal), else None."""
    kind = value.WhichOneof("value")
    if kind == "string_value":
        return value.string_value
    if kind == "int_value":
        return str(value.int_value)
    return None


#: Largest token count kept (exact in a double, so in Redis' Lua numbers); larger is invalid.
MAX_TOKENS = 2**53 - 1
#: Largest cost kept, USD per span; larger, negative or not finite is invalid.
MAX_COST_USD = 1e9
#: Latest time kept, µs since the epoch (2^53 - 1, in the year 2255: exact in a double, so in
#: Redis' Lua numbers); later times are clamped.
MAX_TIME_US = 2**53 - 1
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def _number(value) -> float | None:
    """An AnyValue as a number (ints, doubles, numeric strings), None when it is not one."""
    kind = value.WhichOneof("value")
    if kind == "int_value":
        return value.int_value
    if kind == "double_value":
        return value.double_value
    if kind == "string_value":
        try:
            return float(value.string_value)
        except ValueError:
            return None
    return None


def _clean(text: str) -> str:
    """``text`` with control characters (C0, DEL, C1) replaced by U+FFFD: what labels and
    metadata keep (they are shown and used as field names, never split by such a byte)."""
    return text if text.isprintable() or not _CONTROL.search(text) else _CONTROL.sub("\ufffd", text)


def _environment(resource) -> str | None:
    """The resource's ``deployment.environment.name`` (else ``deployment.environment``)."""
    found = {}
    for kv in resource.attributes:
        if kv.key in _ENVIRONMENT_KEYS and kv.key not in found:
            found[kv.key] = kv.value.string_value
    return next((found[k] for k in _ENVIRONMENT_KEYS if found.get(k)), None)


class BatchBuilder:
    """Turns ``ResourceSpans`` into a :class:`Batch` (stateless apart from its settings)."""

    def __init__(self, prices: PriceTable | None = None, max_id_length: int = attr.MAX_ID_LENGTH) -> None:
        self.prices = prices or PriceTable()
        self.max_id_length = max_id_length
        self._id_validity: dict[str, bool] = {}  # id -> valid, for ids seen lately (ids repeat on every span)

    def _is_valid(self, value: str) -> bool:
        known = self._id_validity.get(value)
        if known is None:
            known = attr.is_valid_id(value, self.max_id_length)
            if len(self._id_validity) >= 50_000:
                self._id_validity.clear()
            self._id_validity[value] = known
        return known

    def build(self, resource_spans: Iterable[ResourceSpans], force_session: str | None = None) -> Batch:
        """Group every span; ``force_session`` assigns spans without a session id to that session."""
        batch = Batch()
        for rs in resource_spans:
            resource = rs.resource
            service = None
            for kv in resource.attributes:
                if kv.key == attr.SERVICE_NAME:
                    service = kv.value.string_value
                    break
            service_label = _SERVICE + _clean(service[:256]) if service else None
            environment = _environment(resource)
            environment_label = _ENVIRONMENT + _clean(environment[:256]) if environment else None
            operations = batch.operations.setdefault(service or "", set())
            resource_bytes = resource.SerializeToString()
            for ss in rs.scope_spans:
                key = (resource_bytes, rs.schema_url, ss.scope.SerializeToString(), ss.schema_url)
                for span in ss.spans:
                    self._add_span(batch, span, key, service_label, force_session, environment_label)
                    operations.add((span.kind, span.name))
        return batch

    def _add_span(self, batch: Batch, span, key: tuple, service_label: str | None,
                  force_session: str | None, environment_label: str | None = None) -> None:
        trace_id = span.trace_id
        span_id = span.span_id
        if len(trace_id) != 16 or len(span_id) != 8 or trace_id == _ZERO_TRACE or span_id == _ZERO_SPAN:
            batch.rejected += 1
            if len(batch.errors) < 5:
                batch.errors.append(
                    f"span {span.name[:64]!r}: trace_id must be 16 bytes and span_id 8 bytes, not all zero"
                )
            return
        batch.span_count += 1

        found: list = [None] * _N_SLOTS
        ranks = [99] * _N_SLOTS
        metadata = None
        conversation = None
        for kv in span.attributes:
            k = kv.key
            hit = _SLOTS.get(k)
            if hit is None:
                if k.startswith(_METADATA_PREFIX):
                    metadata = metadata or {}
                    metadata[k[_METADATA_PREFIX_LEN:]] = kv.value
                continue
            slot, rank = hit
            if rank < ranks[slot]:
                ranks[slot] = rank
                found[slot] = kv.value
            if k == attr.THREAD_ID:
                conversation = kv.value

        # --- ids ---------------------------------------------------------------------------
        session_value = found[_S_SESSION] if found[_S_SESSION] is not None else conversation
        session_id = _text(session_value) if session_value is not None else None
        if session_id is not None and not self._is_valid(session_id):
            batch.invalid_ids += 1
            session_id = None
        if session_id is None:
            session_id = force_session
        elif trace_id not in batch.trace_sessions:
            batch.trace_sessions[trace_id] = session_id

        if session_id is None:
            group = batch.orphans.get(trace_id)
            if group is None:
                group = batch.orphans[trace_id] = Group()
        else:
            group = batch.sessions.get(session_id)
            if group is None:
                group = batch.sessions[session_id] = Group()

        if group.thread_id is None and found[_S_THREAD] is not None:
            group.thread_id = self._valid(batch, _text(found[_S_THREAD]))
        if group.user_id is None and found[_S_USER] is not None:
            group.user_id = self._valid(batch, _text(found[_S_USER]))
        if group.name is None and found[_S_NAME] is not None:
            name = _text(found[_S_NAME])
            group.name = _clean(name[:1024]) if name else None
        if group.previous_id is None and found[_S_PREVIOUS] is not None:
            group.previous_id = self._valid(batch, _text(found[_S_PREVIOUS]))
        if found[_S_ESCALATED] is not None:
            value = found[_S_ESCALATED]
            group.escalated = group.escalated or value.bool_value or value.string_value.lower() == "true"
        if metadata:
            for meta_key, value in metadata.items():
                text = _text(value)
                if text is None:
                    kind = value.WhichOneof("value")
                    text = str(getattr(value, kind)) if kind in ("bool_value", "double_value") else None
                meta_key = _clean(meta_key[:128])
                if text is not None and meta_key not in group.metadata and len(group.metadata) < 64:
                    group.metadata[meta_key] = _clean(text[:1024])

        # --- facts -------------------------------------------------------------------------
        flags = _ERROR if span.status.code == _STATUS_ERROR else 0
        if span.events:
            for event in span.events:
                event_name = event.name
                if event_name == attr.EXCEPTION_EVENT:
                    flags |= _ERROR
                elif event_name == attr.SESSION_END_EVENT:
                    group.ended = True
        root_name = None
        parent = span.parent_span_id
        if not parent or parent == _ZERO_SPAN:  # an all-zero parent id is no parent (invalid id)
            flags |= _ROOT
            root_name = span.name
        tin = self._tokens(batch, span, found[_S_IN])
        tout = self._tokens(batch, span, found[_S_OUT])
        value = found[_S_MODEL]
        model = _text(value) if value is not None else None
        if model:
            model = _clean(model[:256])
            group.labels.add(_MODEL + model)
        cread = cwrite = reasoning = 0
        if tin or tout:
            cread = self._tokens(batch, span, found[_S_CACHE_READ])
            cwrite = self._tokens(batch, span, found[_S_CACHE_WRITE])
            reasoning = self._tokens(batch, span, found[_S_REASONING])
        cost = self._cost(batch, span, found[_S_COST]) if found[_S_COST] is not None else None
        if cost is None:
            cost = 0.0
            if model and (tin or tout):
                estimate = self.prices.estimate(model, tin, tout, cread, cwrite)
                if estimate is not None:
                    cost = estimate
                    flags |= _ESTIMATED
        if (tin or tout or cost) and self._aggregates(found):
            flags |= _AGGREGATE
        if found[_S_AGENT] is not None:
            group.labels.add(_AGENT + _clean(found[_S_AGENT].string_value[:256]))
        if found[_S_TOOL] is not None:
            group.labels.add(_TOOL + _clean(found[_S_TOOL].string_value[:256]))
        if service_label:
            group.labels.add(service_label)
        if environment_label:
            group.labels.add(environment_label)

        start = span.start_time_unix_nano // 1000
        end = span.end_time_unix_nano // 1000
        if start > MAX_TIME_US or end > MAX_TIME_US:
            self._invalid(batch, span, "time after the year 2255 (clamped)")
            start, end = min(start, MAX_TIME_US), min(end, MAX_TIME_US)
        group.spans.append(SpanRecord(key, span.SerializeToString(), span_digest(trace_id, span_id), trace_id,
                                      span_id, flags, start, end if end > start else start, tin, tout, cost, cread,
                                      cwrite, reasoning, root_name))

    @staticmethod
    def _aggregates(found: list) -> bool:
        """True for a span whose usage sums its children's (an agent, chain or workflow span)."""
        value = found[_S_OPERATION]
        if value is not None and value.string_value in attr.AGGREGATE_OPERATIONS:
            return True
        value = found[_S_OI_KIND]
        if value is not None and value.string_value.upper() in attr.AGGREGATE_OPENINFERENCE_KINDS:
            return True
        value = found[_S_TL_KIND]
        return value is not None and value.string_value.lower() in attr.AGGREGATE_TRACELOOP_KINDS

    def _tokens(self, batch: Batch, span, value) -> int:
        """A token count: a whole number from 0 to :data:`MAX_TOKENS`; anything else is
        dropped (0), counted and said in the response."""
        if value is None:
            return 0
        number = _number(value)
        if number is None:
            return 0
        if isinstance(number, int):
            if 0 <= number <= MAX_TOKENS:
                return number
        elif math.isfinite(number) and 0 <= number <= MAX_TOKENS:
            return int(number)
        self._invalid(batch, span, "token count not a whole number from 0 to 2^53 (dropped)")
        return 0

    def _cost(self, batch: Batch, span, value) -> float | None:
        """A cost in USD from 0 to :data:`MAX_COST_USD`; else None (dropped, counted, said)."""
        number = _number(value)
        if number is not None and math.isfinite(number) and 0 <= number <= MAX_COST_USD:
            return float(number)
        self._invalid(batch, span, "cost not a finite amount from 0 to 1e9 USD (dropped)")
        return None

    @staticmethod
    def _invalid(batch: Batch, span, problem: str) -> None:
        batch.invalid_values += 1
        if len(batch.errors) < 5:
            batch.errors.append(f"span {span.name[:64]!r}: {problem}")

    def _valid(self, batch: Batch, value: str | None) -> str | None:
        if value is None or self._is_valid(value):
            return value
        batch.invalid_ids += 1
        return None
