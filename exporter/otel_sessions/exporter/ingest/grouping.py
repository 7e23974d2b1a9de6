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

Two readers feed the same placement (:meth:`BatchBuilder._place`, on typed values: str,
int, float, bool, or :data:`OTHER` for any other AnyValue): :meth:`BatchBuilder.build` walks
upb-parsed messages (the pure-Python path, and the reference); ``native.py`` reads the
request's bytes with the C scanner (``_scan.c``), configured from the tables here.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans

from otel_sessions.exporter.ingest.groups import Batch, Group, SpanRecord, span_digest
from otel_sessions.exporter.ingest.pricing import PriceTable
from otel_sessions.exporter.store.schema import LABEL_KINDS, SpanFlags
from otel_sessions.processor import attributes as attr

__all__ = ["BatchBuilder", "OTHER"]

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
_S_CONVERSATION = 18  # the last gen_ai.conversation.id: the session when no session id is named
_N_SLOTS = 19
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
#: Span event names whose presence sets a bit of a span's event bits.
EVENT_NAMES = (attr.EXCEPTION_EVENT, attr.SESSION_END_EVENT)
_EV_EXCEPTION, _EV_SESSION_END = 1, 2
#: Resource attributes read per ResourceSpans: key -> (slot, rank), the first of a key wins: the
#: service name, then :data:`_ENVIRONMENT_KEYS` in order.
RESOURCE_SLOTS: dict[str, tuple[int, int]] = {attr.SERVICE_NAME: (0, 0),
                                              **{key: (i + 1, 0) for i, key in enumerate(_ENVIRONMENT_KEYS)}}


class _Other:
    """The typed value of an attribute that is no string, bool, integer or double (an
    array, a key-value list, bytes, or no value)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "OTHER"


#: See :class:`_Other`.
OTHER = _Other()


def _typed(value):
    """An AnyValue as str, int, float or bool (its oneof member), else :data:`OTHER`."""
    kind = value.WhichOneof("value")
    if kind == "string_value":
        return value.string_value
    if kind == "int_value":
        return value.int_value
    if kind == "double_value":
        return value.double_value
    if kind == "bool_value":
        return value.bool_value
    return OTHER


def scanner_tables() -> dict:
    """The key tables of this module, as the native scanner's ``configure`` takes them."""
    span_keys = [(key, slot, rank) for key, (slot, rank) in _SLOTS.items()]
    span_keys.append((attr.THREAD_ID, _S_CONVERSATION, 0))
    return {"span_keys": span_keys, "span_slots": _N_SLOTS, "last_wins": (_S_CONVERSATION,),
            "metadata_prefix": _METADATA_PREFIX,
            "resource_keys": [(key, slot, rank) for key, (slot, rank) in RESOURCE_SLOTS.items()],
            "resource_slots": len(RESOURCE_SLOTS), "event_names": EVENT_NAMES, "other": OTHER}


def _text(value) -> str | None:
    """An AnyValue as an id string (strings as they are, integers in decimal), else None."""
    kind = value.WhichOneof("value")
    if kind == "string_value":
        return value.string_value
    if kind == "int_value":
        return str(value.int_value)
    return None


def _text_of(value) -> str | None:
    """A typed value as an id string (strings as they are, integers in decimal), else None."""
    kind = type(value)
    if kind is str:
        return value
    if kind is int:
        return str(value)
    return None


def _string(value) -> str:
    """A typed value's ``string_value``: the string, "" for any other value."""
    return value if type(value) is str else ""


#: Largest token count kept (exact in a double, so in Redis' Lua numbers); larger is invalid.
MAX_TOKENS = 2**53 - 1
#: Largest cost kept, USD per span; larger, negative or not finite is invalid.
MAX_COST_USD = 1e9
#: Latest time kept, µs since the epoch (2^53 - 1, in the year 2255: exact in a double, so in
#: Redis' Lua numbers); later times are clamped.
MAX_TIME_US = 2**53 - 1
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def _number(value) -> float | None:
    """A typed value as a number (ints, doubles, numeric strings), None when it is not one."""
    kind = type(value)
    if kind is int or kind is float:
        return value
    if kind is str:
        try:
            return float(value)
        except ValueError:
            return None
    return None


def _clean(text: str) -> str:
    """``text`` with control characters (C0, DEL, C1) replaced by U+FFFD: what labels and
    metadata keep (they are shown and used as field names, never split by such a byte)."""
    return text if text.isprintable() or not _CONTROL.search(text) else _CONTROL.sub("\ufffd", text)


def _environment(values) -> str | None:
    """The deployment environment: the first non-empty string among the typed values of
    :data:`_ENVIRONMENT_KEYS` (each key's first attribute; None where absent)."""
    return next((value for value in values if type(value) is str and value), None)


def _resource_environment(resource) -> str | None:
    """The resource's ``deployment.environment.name`` (else ``deployment.environment``)."""
    found = {}
    for kv in resource.attributes:
        if kv.key in _ENVIRONMENT_KEYS and kv.key not in found:
            found[kv.key] = _typed(kv.value)
    return _environment([found.get(key) for key in _ENVIRONMENT_KEYS])


class BatchBuilder:
    """Turns ``ResourceSpans`` into a :class:`Batch` (stateless apart from its settings)."""

    #: True for the builder reading requests with the native scanner (``native.py``).
    native = False

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

    def build_bytes(self, body: bytes, force_session: str | None = None) -> Batch:
        """Group a serialized ``ExportTraceServiceRequest`` (or ``TracesData``).

        Raises ``google.protobuf.message.DecodeError`` when it does not parse."""
        return self.build(ExportTraceServiceRequest.FromString(body).resource_spans, force_session)

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
            labels, operations = self._resource(batch, service, _resource_environment(resource))
            resource_bytes = resource.SerializeToString()
            for ss in rs.scope_spans:
                key = (resource_bytes, rs.schema_url, ss.scope.SerializeToString(), ss.schema_url)
                for span in ss.spans:
                    self._add_span(batch, span, key, labels, force_session)
                    operations.add((span.kind, span.name))
        return batch

    @staticmethod
    def _resource(batch: Batch, service: str | None, environment: str | None) -> tuple[tuple[str, ...], set]:
        """A resource's labels (service, deployment environment) and its set of (span kind,
        span name) in ``batch``."""
        labels = (_SERVICE + _clean(service[:256]),) if service else ()
        if environment:
            labels += (_ENVIRONMENT + _clean(environment[:256]),)
        return labels, batch.operations.setdefault(service or "", set())

    @classmethod
    def _resource_from_slots(cls, batch: Batch, values) -> tuple[tuple[str, ...], set]:
        """:meth:`_resource` from the typed values of :data:`RESOURCE_SLOTS` (None where absent)."""
        service = values[0]
        if service is not None and type(service) is not str:
            service = ""  # the walk reads string_value
        return cls._resource(batch, service, _environment(values[1:]))

    def _add_span(self, batch: Batch, span, key: tuple, resource_labels: tuple[str, ...],
                  force_session: str | None) -> None:
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
        found[_S_CONVERSATION] = conversation
        events = 0
        if span.events:
            for event in span.events:
                event_name = event.name
                if event_name == attr.EXCEPTION_EVENT:
                    events |= _EV_EXCEPTION
                elif event_name == attr.SESSION_END_EVENT:
                    events |= _EV_SESSION_END
        parent = span.parent_span_id
        self._place(batch, key, resource_labels, force_session, span.SerializeToString(), span.trace_id,
                    span.span_id, span.name, not parent or parent == _ZERO_SPAN,  # an all-zero parent is none
                    span.start_time_unix_nano, span.end_time_unix_nano, span.status.code, events,
                    [None if value is None else _typed(value) for value in found],
                    {k: _typed(value) for k, value in metadata.items()} if metadata else None)

    def _place(self, batch: Batch, key: tuple, resource_labels: tuple[str, ...], force_session: str | None,
               body: bytes, trace_id: bytes, span_id: bytes, name: str, root: bool, start_ns: int, end_ns: int,
               status: int, events: int, found, metadata: dict | None, digest: bytes | None = None) -> None:
        """Add one span to ``batch``: ``found`` holds the typed value of each attribute slot
        (None when no attribute named it), ``metadata`` the ``session.metadata.*`` values by
        key suffix, ``events`` the event bits (:data:`EVENT_NAMES`); ``digest``: its
        ``span_digest``, when at hand."""
        if len(trace_id) != 16 or len(span_id) != 8 or trace_id == _ZERO_TRACE or span_id == _ZERO_SPAN:
            batch.rejected += 1
            if len(batch.errors) < 5:
                batch.errors.append(
                    f"span {name[:64]!r}: trace_id must be 16 bytes and span_id 8 bytes, not all zero"
                )
            return
        batch.span_count += 1

        # --- ids ---------------------------------------------------------------------------
        session_value = found[_S_SESSION] if found[_S_SESSION] is not None else found[_S_CONVERSATION]
        session_id = _text_of(session_value)
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
            group.thread_id = self._valid(batch, _text_of(found[_S_THREAD]))
        if group.user_id is None and found[_S_USER] is not None:
            group.user_id = self._valid(batch, _text_of(found[_S_USER]))
        if group.name is None and found[_S_NAME] is not None:
            session_name = _text_of(found[_S_NAME])
            group.name = _clean(session_name[:1024]) if session_name else None
        if group.previous_id is None and found[_S_PREVIOUS] is not None:
            group.previous_id = self._valid(batch, _text_of(found[_S_PREVIOUS]))
        if found[_S_ESCALATED] is not None:
            value = found[_S_ESCALATED]
            group.escalated = group.escalated or value is True or _string(value).lower() == "true"
        if metadata:
            for meta_key, value in metadata.items():
                text = _text_of(value)
                if text is None and type(value) in (bool, float):
                    text = str(value)
                meta_key = _clean(meta_key[:128])
                if text is not None and meta_key not in group.metadata and len(group.metadata) < 64:
                    group.metadata[meta_key] = _clean(text[:1024])

        # --- facts -------------------------------------------------------------------------
        flags = _ERROR if status == _STATUS_ERROR else 0
        if events:
            if events & _EV_EXCEPTION:
                flags |= _ERROR
            if events & _EV_SESSION_END:
                group.ended = True
        root_name = None
        if root:
            flags |= _ROOT
            root_name = name
        tin = self._tokens(batch, name, found[_S_IN])
        tout = self._tokens(batch, name, found[_S_OUT])
        model = _text_of(found[_S_MODEL])
        if model:
            model = _clean(model[:256])
            group.labels.add(_MODEL + model)
        cread = cwrite = reasoning = 0
        if tin or tout:
            cread = self._tokens(batch, name, found[_S_CACHE_READ])
            cwrite = self._tokens(batch, name, found[_S_CACHE_WRITE])
            reasoning = self._tokens(batch, name, found[_S_REASONING])
        cost = self._cost(batch, name, found[_S_COST]) if found[_S_COST] is not None else None
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
            group.labels.add(_AGENT + _clean(_string(found[_S_AGENT])[:256]))
        if found[_S_TOOL] is not None:
            group.labels.add(_TOOL + _clean(_string(found[_S_TOOL])[:256]))
        for label in resource_labels:
            group.labels.add(label)

        start = start_ns // 1000
        end = end_ns // 1000
        if start > MAX_TIME_US or end > MAX_TIME_US:
            self._invalid(batch, name, "time after the year 2255 (clamped)")
            start, end = min(start, MAX_TIME_US), min(end, MAX_TIME_US)
        if digest is None:
            digest = span_digest(trace_id, span_id)
        group.spans.append(SpanRecord(key, body, digest, trace_id, span_id, flags, start,
                                      end if end > start else start, tin, tout, cost, cread, cwrite, reasoning,
                                      root_name))

    @staticmethod
    def _aggregates(found) -> bool:
        """True for a span whose usage sums its children's (an agent, chain or workflow span)."""
        value = found[_S_OPERATION]
        if value is not None and _string(value) in attr.AGGREGATE_OPERATIONS:
            return True
        value = found[_S_OI_KIND]
        if value is not None and _string(value).upper() in attr.AGGREGATE_OPENINFERENCE_KINDS:
            return True
        value = found[_S_TL_KIND]
        return value is not None and _string(value).lower() in attr.AGGREGATE_TRACELOOP_KINDS

    def _tokens(self, batch: Batch, name: str, value) -> int:
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
        self._invalid(batch, name, "token count not a whole number from 0 to 2^53 (dropped)")
        return 0

    def _cost(self, batch: Batch, name: str, value) -> float | None:
        """A cost in USD from 0 to :data:`MAX_COST_USD`; else None (dropped, counted, said)."""
        number = _number(value)
        if number is not None and math.isfinite(number) and 0 <= number <= MAX_COST_USD:
            return float(number)
        self._invalid(batch, name, "cost not a finite amount from 0 to 1e9 USD (dropped)")
        return None

    @staticmethod
    def _invalid(batch: Batch, name: str, problem: str) -> None:
        batch.invalid_values += 1
        if len(batch.errors) < 5:
            batch.errors.append(f"span {name[:64]!r}: {problem}")

    def _valid(self, batch: Batch, value: str | None) -> str | None:
        if value is None or self._is_valid(value):
            return value
        batch.invalid_ids += 1
        return None
