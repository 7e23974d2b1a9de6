"""The records grouping makes: a span as the store needs it, a session's group of spans, a batch.

A :class:`Group` becomes one :class:`~otel_sessions.exporter.store.records.SessionWrite`:
8-byte span and trace digests (idempotency and trace counting in the store's script),
totals, and one compressed chunk with the spans and the per-trace figures
(``store/codec.py``).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from hashlib import blake2b
from typing import NamedTuple

from otel_sessions.exporter.store.codec import encode_chunk, trace_entry
from otel_sessions.exporter.store.records import SessionWrite
from otel_sessions.exporter.store.schema import METADATA_PREFIX, Field, SessionFlags, SpanFlags

__all__ = ["SpanRecord", "Payload", "Group", "Batch", "span_digest", "trace_digest", "usage_marker"]

# plain ints on the hot path (IntFlag arithmetic allocates)
_ERROR = int(SpanFlags.ERROR)
_ROOT = int(SpanFlags.ROOT)
_ESTIMATED = int(SpanFlags.COST_ESTIMATED)
_AGGREGATE = int(SpanFlags.AGGREGATE)


class SpanRecord(NamedTuple):
    """One span as the store needs it (values already validated: finite, in range)."""

    scope: tuple  # (resource bytes, resource schema_url, scope bytes, scope schema_url)
    body: bytes  # the serialized span
    digest: bytes  # span_digest(trace id, span id)
    trace_id: bytes
    span_id: bytes
    flags: int  # SpanFlags
    start_us: int
    end_us: int
    input_tokens: int
    output_tokens: int
    cost_usd: float
    cache_read_tokens: int
    cache_write_tokens: int
    reasoning_tokens: int
    root_name: str | None  # the span's name when it is a root


class _TraceTotals:
    """Running figures of one trace within a group (the chunk's trace table): the model
    calls' usage summed, and the largest usage of an aggregating span."""

    __slots__ = ("start", "end", "spans", "errors", "tin", "tout", "cost", "root_name", "ain", "aout", "acost")

    def __init__(self, start: int, end: int, root: str) -> None:
        self.start, self.end, self.spans, self.errors, self.root_name = start, end, 0, 0, root
        self.tin = self.tout = self.ain = self.aout = 0
        self.cost = self.acost = 0.0

    def entry(self, trace_id: bytes) -> bytes:
        return trace_entry(trace_id, self.start, self.end, self.spans, self.errors, self.tin, self.tout, self.cost,
                           self.root_name, self.ain, self.aout, self.acost)


def _trace_selector(trace_id: bytes) -> bytes:
    return blake2b(trace_id, digest_size=2, person=b"bucket").digest()


def span_digest(trace_id: bytes, span_id: bytes) -> bytes:
    """8 bytes identifying a span within a session (idempotency): 2 bytes chosen by its trace
    (the store keeps a trace's digests in one bucket, so a write touches few buckets), then 6
    bytes of a hash of trace and span id."""
    return _trace_selector(trace_id) + blake2b(trace_id + span_id, digest_size=6).digest()


def trace_digest(trace_id: bytes) -> bytes:
    """8 bytes identifying a trace within a session (counting distinct traces), in its
    spans' bucket."""
    return _trace_selector(trace_id) + blake2b(trace_id, digest_size=6).digest()


def usage_marker(trace_id: bytes) -> bytes:
    """8 bytes marking, within a session, a trace whose model calls carried usage (stored with
    the digests, in the trace's bucket; an aggregating span's usage of that trace is then not
    counted)."""
    return _trace_selector(trace_id) + blake2b(trace_id, digest_size=6, person=b"usage").digest()


@dataclass
class Payload:
    """Figures and chunk of a group's spans (each trace + span id once).

    Usage is counted at the model-call spans: ``input_tokens`` etc. sum them; ``aggregates``
    holds, per trace whose model calls carried no usage here, the largest usage an aggregating
    span carried (``usage_marker``, input, output, cost), which the store counts only while
    no model call of that trace carries usage (``markers``: the traces whose do)."""

    span_count: int
    span_ids: bytes  # n x 8-byte span digests
    trace_ids: bytes  # 8-byte digests of the distinct traces
    markers: bytes  # 8-byte usage markers of the traces whose model calls carry usage
    aggregates: list[tuple[bytes, int, int, float]]
    errors: int
    input_tokens: int
    output_tokens: int
    cost_usd: float
    cache_read_tokens: int
    cache_write_tokens: int
    reasoning_tokens: int
    start_us: int
    end_us: int
    failed: bool
    cost_estimated: bool
    chunk: bytes


@dataclass
class Group:
    """Spans of one session (or, for orphans, of one trace) from one request."""

    spans: list[SpanRecord] = field(default_factory=list)
    labels: set[str] = field(default_factory=set)
    metadata: dict[str, str] = field(default_factory=dict)
    name: str | None = None
    user_id: str | None = None
    thread_id: str | None = None
    previous_id: str | None = None
    ended: bool = False
    escalated: bool = False

    @property
    def span_count(self) -> int:
        return len(self.spans)

    def payload(self) -> Payload:
        """Figures and chunk of this group's spans; a span repeated within the group counts once."""
        scopes: dict[tuple, list[bytes]] = {}
        traces: dict[bytes, _TraceTotals] = {}
        ids: dict[bytes, None] = {}
        errors = count = tin_sum = tout_sum = cread = cwrite = reasoning = 0
        cost_sum = 0.0
        first = last = 0
        failed = estimated = False
        for (key, body, digest, trace_id, _span_id, flags, start, end, tin, tout, cost, cr, cw, rs,
             root_name) in self.spans:
            if digest in ids:
                continue
            count += 1
            ids[digest] = None
            bodies = scopes.get(key)
            if bodies is None:
                scopes[key] = [body]
            else:
                bodies.append(body)
            if not first or start < first:
                first = start
            if end > last:
                last = end
            t = traces.get(trace_id)
            if t is None:
                t = traces[trace_id] = _TraceTotals(start, end, root_name or "")
            else:
                if start < t.start:
                    t.start = start
                if end > t.end:
                    t.end = end
                if root_name and not t.root_name:
                    t.root_name = root_name
            t.spans += 1
            if flags & _ERROR:
                errors += 1
                t.errors += 1
                if flags & _ROOT:
                    failed = True
            if flags & _ESTIMATED:
                estimated = True
            if not (tin or tout or cost):
                continue
            if flags & _AGGREGATE:
                if tin + tout > t.ain + t.aout or (tin + tout == t.ain + t.aout and cost > t.acost):
                    t.ain, t.aout, t.acost = tin, tout, cost
                continue
            tin_sum += tin
            tout_sum += tout
            cost_sum += cost
            cread += cr
            cwrite += cw
            reasoning += rs
            t.tin += tin
            t.tout += tout
            t.cost += cost
        table = [t.entry(trace_id) for trace_id, t in traces.items()]
        chunk = encode_chunk([(*key, bodies) for key, bodies in scopes.items()], count, table) if count else b""
        markers = b"".join([usage_marker(tid) for tid, t in traces.items() if t.tin or t.tout or t.cost])
        aggregates = [(usage_marker(tid), t.ain, t.aout, t.acost) for tid, t in traces.items()
                      if (t.ain or t.aout or t.acost) and not (t.tin or t.tout or t.cost)]
        return Payload(count, b"".join(ids), b"".join([trace_digest(t) for t in traces]), markers, aggregates,
                       errors, tin_sum, tout_sum, cost_sum, cread, cwrite, reasoning, first, last, failed, estimated,
                       chunk)

    def to_write(self, session_id: str) -> SessionWrite:
        """The store record of this group as session ``session_id``."""
        p = self.payload()
        flags = ((SessionFlags.ENDED if self.ended else 0) | (SessionFlags.ESCALATED if self.escalated else 0)
                 | (SessionFlags.FAILED if p.failed else 0) | (SessionFlags.COST_ESTIMATED if p.cost_estimated else 0))
        once = [("id", session_id)]
        for field_name, value in (("name", self.name), ("user", self.user_id), ("thread", self.thread_id),
                                  ("prev", self.previous_id)):
            if value:
                once.append((field_name, value))
        once += [(METADATA_PREFIX + key, value) for key, value in self.metadata.items()]
        counters = [(Field.ERRORS, p.errors), (Field.INPUT, p.input_tokens), (Field.OUTPUT, p.output_tokens),
                    (Field.COST, p.cost_usd)]
        counters += [(name, value) for name, value in ((Field.CACHE_READ, p.cache_read_tokens),
                                                       (Field.CACHE_WRITE, p.cache_write_tokens),
                                                       (Field.REASONING, p.reasoning_tokens)) if value]
        return SessionWrite(
            session_id, p.span_count, p.span_ids, p.trace_ids, p.markers, tuple(p.aggregates), tuple(counters),
            p.start_us, p.end_us, int(flags), tuple(once), tuple(sorted(self.labels)), p.chunk,
            self.user_id, self.thread_id,
        )

    def only(self, mask: bytes) -> Group:
        """A copy holding only the spans whose byte in ``mask`` is ``b"1"`` (mask is over the
        distinct spans in :meth:`payload` order, as the store's partial-write reply gives it)."""
        digests: list[bytes] = list(dict.fromkeys(record.digest for record in self.spans))
        keep = {digest for digest, flag in zip(digests, mask) if flag == 49}  # '1'
        return replace(self, spans=[record for record in self.spans if record.digest in keep])

    def merge(self, other: Group) -> None:
        """Add ``other``'s spans (an orphan group joining this session)."""
        self.spans.extend(other.spans)
        self.labels |= other.labels
        for key, value in other.metadata.items():
            self.metadata.setdefault(key, value)
        self.ended = self.ended or other.ended
        self.escalated = self.escalated or other.escalated
        for name in ("name", "user_id", "thread_id", "previous_id"):
            if getattr(self, name) is None:
                setattr(self, name, getattr(other, name))


@dataclass
class Batch:
    """The spans of one request, grouped: by session, orphans by trace, and what was refused.

    ``operations`` holds, per service name, the (span kind, span name) pairs seen: what the
    Jaeger index lists, learnt in the same pass."""

    sessions: dict[str, Group] = field(default_factory=dict)
    orphans: dict[bytes, Group] = field(default_factory=dict)
    trace_sessions: dict[bytes, str] = field(default_factory=dict)  # first session named per trace
    # trace -> the session that owns it, as the store (or this process's earlier claim) said
    # while Ingestor.write stored the batch: claims and orphan traces that turned out to have one
    owners: dict[bytes, str] = field(default_factory=dict)
    operations: dict[str, set[tuple[int, str]]] = field(default_factory=dict)
    span_count: int = 0
    rejected: int = 0
    invalid_ids: int = 0
    invalid_values: int = 0  # values dropped or clamped (the span kept)
    errors: list[str] = field(default_factory=list)

    def join_local(self) -> int:
        """Move orphans whose trace names a session in this same request; returns spans moved."""
        moved = 0
        for trace_id in [t for t in self.orphans if t in self.trace_sessions]:
            group = self.orphans.pop(trace_id)
            self.sessions[self.trace_sessions[trace_id]].merge(group)
            moved += group.span_count
        return moved
