"""A long session: idempotency and trace counting stay exact when its digests move into
buckets, stay bounded by --max-spans-per-session, and every key keeps a TTL."""

from __future__ import annotations

import random

import redis
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from otel_sessions.exporter.store.keys import Keys
from tests.support import RunningService


def request(session_id: str, spans: list[tuple[bytes, bytes]], tokens: int = 1) -> ExportTraceServiceRequest:
    """One request with ``spans`` ((trace id, span id) pairs) naming ``session_id``."""
    out = ExportTraceServiceRequest()
    rs = out.resource_spans.add()
    rs.resource.attributes.add(key="service.name").value.string_value = "long"
    ss = rs.scope_spans.add()
    for i, (trace_id, span_id) in enumerate(spans):
        span = ss.spans.add(trace_id=trace_id, span_id=span_id, name=f"op {i % 7}",
                            start_time_unix_nano=1_700_000_000_000_000_000 + i * 1000,
                            end_time_unix_nano=1_700_000_000_000_000_000 + i * 1000 + 500)
        span.attributes.add(key="session.id").value.string_value = session_id
        span.attributes.add(key="gen_ai.usage.input_tokens").value.int_value = tokens
    return out


def ids(rng: random.Random, n: int, traces: int) -> list[tuple[bytes, bytes]]:
    trace_ids = [rng.randbytes(16) for _ in range(traces)]
    return [(trace_ids[i % traces], rng.randbytes(8)) for i in range(n)]


def test_a_long_session_counts_every_span_and_trace_once(redis_url):
    rng = random.Random(7)
    all_spans = ids(rng, 6000, 600)
    with RunningService(redis_url) as svc:
        export = svc.service.ingestor.export
        for first in range(0, 6000, 100):
            svc.call(export(request("sess-long", all_spans[first:first + 100])))
        summary = svc.session("sess-long")
        assert (summary.span_count, summary.trace_count, summary.input_tokens) == (6000, 600, 6000)
        client = redis.Redis.from_url(redis_url)
        keys = Keys()
        _sum, _chunks, ids_key, _agg = keys.session("sess-long")
        level = int(client.hget(keys.summary("sess-long"), "idb"))  # spread over 2^level buckets
        buckets = [f"{ids_key}:{level}:{b}" for b in range(2 ** level)]
        assert 2 ** level >= (6000 + 600 + 600) // 128
        assert not client.exists(ids_key) and client.exists(*buckets) == len(buckets)
        assert all(client.pttl(key) > 0 for key in buckets)
        assert max(client.strlen(key) for key in buckets) <= 8 * 256

        # retries: whole requests again, and requests overlapping old and new spans
        for first in range(0, 6000, 1000):
            svc.call(export(request("sess-long", all_spans[first:first + 100])))
        more = ids(rng, 50, 5)
        svc.call(export(request("sess-long", all_spans[10:60] + more)))
        summary = svc.session("sess-long")
        assert (summary.span_count, summary.trace_count, summary.input_tokens) == (6050, 605, 6050)

        assert svc.call(svc.store.delete_session("sess-long"))
        assert client.exists(*buckets, ids_key, keys.summary("sess-long")) == 0


def test_digests_stay_bounded_by_the_span_cap(redis_url):
    rng = random.Random(8)
    with RunningService(redis_url, max_spans_per_session=1000) as svc:
        for _ in range(40):
            svc.call(svc.service.ingestor.export(request("sess-capped", ids(rng, 200, 20))))
        summary = svc.session("sess-capped")
        assert summary.span_count == 8000 and summary.spans_dropped >= 7000
        client = redis.Redis.from_url(redis_url)
        ids_key = Keys().session("sess-capped")[2]
        level = int(client.hget(Keys().summary("sess-capped"), "idb"))
        stored = sum(client.strlen(f"{ids_key}:{level}:{b}") for b in range(2 ** level)) // 8
        assert 2 ** level <= 32  # the buckets stopped doubling at the cap
        assert stored <= 2 ** level * 256, stored  # and each stays bounded
