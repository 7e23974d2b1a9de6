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
_MODEL, _SERVICE, _AGENT, _TOOL = (LABEL_KINDS[k] for k in ("model", "service", "agent", "tool"))

_STATUS_ERROR = 2
_ZERO_TRACE = bytes(16)
_ZERO_SPAN = bytes(8)

# Attribute key -> (slot, rank). Lower rank wins within a slot.
_S_SESSION, _S_THREAD, _S_USER, _S_NAME, _S_IN, _S_OUT, _S_COST, _S_MODEL = range(8)
_S_AGENT, _S_TOOL, _S_PREVIOUS, _S_ESCALATED = range(8, 12)
_N_SLOTS = 12
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


def _number(value) -> float:
    kind = value.WhichOneof("value")
    if kind == "int_value":
        return float(value.int_value)
    if kind == "double_value":
        return value.double_value
    if kind == "string_value":
        try:
            return float(value.string_value)
        except ValueError:
            return 0.0
    return 0.0


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
            service_label = _SERVICE + service if service else None
            operations = batch.operations.setdefault(service or "", set())
            resource_bytes = resource.SerializeToString()
            for ss in rs.scope_spans:
                key = (resource_bytes, rs.schema_url, ss.scope.SerializeToString(), ss.schema_url)
                for span in ss.spans:
                    self._add_span(batch, span, key, service_label, force_session)
                    operations.add((span.kind, span.name))
        return batch

    def _add_span(self, batch: Batch, span, key: tuple, service_label: str | None,
                  force_session: str | None) -> None:
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
            group.name = name[:1024] if name else None
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
                if text is not None and meta_key not in group.metadata and len(group.metadata) < 64:
                    group.metadata[meta_key[:128]] = text[:1024]

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
        if not span.parent_span_id:
            flags |= _ROOT
            root_name = span.name
        value = found[_S_IN]
        in_tokens = _number(value) if value is not None else 0.0
        value = found[_S_OUT]
        out_tokens = _number(value) if value is not None else 0.0
        value = found[_S_MODEL]
        model = _text(value) if value is not None else None
        if model:
            group.labels.add(_MODEL + model[:256])
        if found[_S_COST] is not None:
            cost = _number(found[_S_COST])
        elif model and (in_tokens or out_tokens):
            estimate = self.prices.estimate(model, in_tokens, out_tokens)
            cost = estimate or 0.0
            if estimate is not None:
                flags |= _ESTIMATED
        else:
            cost = 0.0
        if found[_S_AGENT] is not None:
            group.labels.add(_AGENT + found[_S_AGENT].string_value[:256])
        if found[_S_TOOL] is not None:
            group.labels.add(_TOOL + found[_S_TOOL].string_value[:256])
        if service_label:
            group.labels.add(service_label)

        start = span.start_time_unix_nano // 1000
        end = span.end_time_unix_nano // 1000
        group.spans.append(SpanRecord(key, span.SerializeToString(), span_digest(trace_id, span_id), trace_id,
                                      span_id, flags, start, end if end > start else start, in_tokens, out_tokens,
                                      cost, root_name))

    def _valid(self, batch: Batch, value: str | None) -> str | None:
        if value is None or self._is_valid(value):
            return value
        batch.invalid_ids += 1
        return None
