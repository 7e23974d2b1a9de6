"""Per-span usage and cost of stored spans, counted as the session summary counts them.

:func:`span_usage` runs the ingest path's attribute walk (:class:`~.grouping.BatchBuilder`,
with the service's price table) over spans read back from the store, and returns one entry
per span that carries tokens or a cost: the figures the summary added up, so a page can
show where a session's tokens and cost were spent (per model call, per agent) and have them
add up to the summary's. Attribute names and the counting rule: ``docs/conventions.md``
("Usage, cost and labels", "Usage counted once").

A span's usage is *counted* when it is a model-call span, or, in a trace where no model
call carries usage, the trace's largest aggregating span (agent, chain, workflow) - as
:meth:`~.groups.Group.payload` and the store's write script count it.
"""

from __future__ import annotations

from typing import Any

from opentelemetry.proto.trace.v1.trace_pb2 import TracesData

from otel_sessions.exporter.ingest.grouping import BatchBuilder
from otel_sessions.exporter.ingest.groups import SpanRecord
from otel_sessions.exporter.store.schema import SpanFlags

__all__ = ["span_usage"]

_ESTIMATED = int(SpanFlags.COST_ESTIMATED)
_AGGREGATE = int(SpanFlags.AGGREGATE)


def span_usage(data: TracesData, builder: BatchBuilder, session_id: str) -> list[dict[str, Any]]:
    """One dict per span with tokens or a cost, in stored order (each trace and span id once)::

        {"trace_id": 32 hex, "span_id": 16 hex, "input_tokens", "output_tokens",
         "cache_read_tokens", "cache_write_tokens", "reasoning_tokens": int,
         "cost_usd": float (USD, 10 decimals), "cost_estimated": bool (from the price table),
         "aggregate": bool (an agent/chain span summing its children), "counted": bool}

    Values are validated as on ingest (a bad token count is 0, a bad cost none).
    """
    batch = builder.build(data.resource_spans, force_session=session_id)
    records: list[SpanRecord] = []
    seen: set[bytes] = set()
    for group in [*batch.sessions.values(), *batch.orphans.values()]:
        for record in group.spans:
            if record.digest not in seen:
                seen.add(record.digest)
                records.append(record)
    used = [r for r in records if r.input_tokens or r.output_tokens or r.cost_usd]
    # per trace: model calls count; else its largest aggregating span (ties: the higher cost)
    with_calls = {r.trace_id for r in used if not r.flags & _AGGREGATE}
    largest: dict[bytes, SpanRecord] = {}
    for r in used:
        if r.flags & _AGGREGATE and r.trace_id not in with_calls:
            best = largest.get(r.trace_id)
            size, best_size = r.input_tokens + r.output_tokens, (best.input_tokens + best.output_tokens if best else -1)
            if best is None or size > best_size or (size == best_size and r.cost_usd > best.cost_usd):
                largest[r.trace_id] = r
    counted = {id(r) for r in largest.values()}
    return [{
        "trace_id": r.trace_id.hex(), "span_id": r.span_id.hex(),
        "input_tokens": r.input_tokens, "output_tokens": r.output_tokens,
        "cache_read_tokens": r.cache_read_tokens, "cache_write_tokens": r.cache_write_tokens,
        "reasoning_tokens": r.reasoning_tokens, "cost_usd": round(r.cost_usd, 10),
        "cost_estimated": bool(r.flags & _ESTIMATED), "aggregate": bool(r.flags & _AGGREGATE),
        "counted": not r.flags & _AGGREGATE or id(r) in counted,
    } for r in used]
