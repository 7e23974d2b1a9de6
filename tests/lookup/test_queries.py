"""The shard merge of list queries and the live tail, on a real Redis, without a server."""

from __future__ import annotations

import asyncio
import random

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from otel_sessions.exporter.ingest.grouping import BatchBuilder
from otel_sessions.exporter.ingest.ingestor import Ingestor
from otel_sessions.exporter.lookup.params import SessionQuery
from otel_sessions.exporter.lookup.queries import SessionQueries
from otel_sessions.exporter.lookup.tail import SessionTail
from otel_sessions.exporter.store.keys import session_shard
from tests.support import open_store


def _request(session_ids: list[str], rng: random.Random) -> ExportTraceServiceRequest:
    out = ExportTraceServiceRequest()
    ss = out.resource_spans.add().scope_spans.add()
    for i, session_id in enumerate(session_ids):
        for k in range(1 + i % 4):  # 1 to 4 spans: uneven span counts and tokens
            span = ss.spans.add(trace_id=rng.randbytes(16), span_id=rng.randbytes(8), name="op",
                                start_time_unix_nano=1_700_000_000_000_000_000 + rng.randrange(10**12),
                                end_time_unix_nano=1_700_000_100_000_000_000 + rng.randrange(10**12))
            span.attributes.add(key="session.id").value.string_value = session_id
            span.attributes.add(key="user.id").value.string_value = f"u{i % 3}"
            span.attributes.add(key="gen_ai.usage.input_tokens").value.int_value = rng.randrange(1, 10_000) + k
    return out


@pytest.fixture()
def uneven(redis_url):
    """310 sessions: 300 in shard 3, 10 spread over the others (windows must widen to merge)."""
    rng = random.Random(5)
    heavy, light, n = [], [], 0
    while len(heavy) < 300 or len(light) < 10:
        sid = f"sess-{n:05d}"
        n += 1
        if session_shard(sid) == 3 and len(heavy) < 300:
            heavy.append(sid)
        elif session_shard(sid) != 3 and len(light) < 10:
            light.append(sid)

    async def fill():
        store = open_store(redis_url)
        await store.load_scripts()
        ingestor = Ingestor(store, BatchBuilder())
        everyone = heavy + light
        for first in range(0, len(everyone), 50):
            await ingestor.export(_request(everyone[first:first + 50], rng))
        return store

    loop = asyncio.new_event_loop()
    store = loop.run_until_complete(fill())
    yield loop, store, heavy + light
    loop.run_until_complete(store.close())
    loop.close()


@pytest.mark.parametrize("sort_by", ["start", "tokens", "spans", "end", "last_activity"])
@pytest.mark.parametrize("descending", [True, False])
def test_pages_of_uneven_shards_equal_slices_of_the_whole_sort(uneven, sort_by, descending):
    loop, store, _everyone = uneven
    queries = SessionQueries(store)
    order = "desc" if descending else "asc"
    whole = loop.run_until_complete(queries.list_sessions(SessionQuery.build(limit=500, sort_by=sort_by,
                                                                             sort_order=order)))
    assert whole.total == 310 and len(whole.sessions) == 310
    key = {"start": "start_us", "tokens": "total_tokens", "spans": "span_count", "end": "end_us",
           "last_activity": "last_seen_ms"}[sort_by]
    values = [getattr(s, key) for s in whole.sessions]
    assert values == sorted(values, reverse=descending)
    for offset, limit in ((0, 5), (3, 17), (150, 40), (295, 30), (309, 1), (310, 5)):
        page = loop.run_until_complete(queries.list_sessions(SessionQuery.build(
            limit=limit, offset=offset, sort_by=sort_by, sort_order=order)))
        assert [s.id for s in page.sessions] == [s.id for s in whole.sessions][offset:offset + limit]
        assert page.total == 310 and not page.partial


def test_a_filter_no_index_serves_is_exact_within_the_candidates_and_partial_beyond(uneven):
    loop, store, _everyone = uneven
    exact = loop.run_until_complete(SessionQueries(store).list_sessions(SessionQuery.build(user_id="u1", limit=500)))
    assert exact.total == len([s for s in exact.sessions if s.user_id == "u1"]) > 0 and not exact.partial
    bounded = SessionQueries(store, max_candidates=50)
    result = loop.run_until_complete(bounded.list_sessions(SessionQuery.build(statuses=("active",), limit=500)))
    assert result.partial and result.total == 50  # only the 50 candidates examined, and it says so


def test_a_tail_yields_each_new_write_once_from_the_moment_it_started(redis_url):
    async def run():
        store = open_store(redis_url)
        await store.load_scripts()
        ingestor = Ingestor(store, BatchBuilder())
        rng = random.Random(9)
        await ingestor.export(_request(["sess-tail"], rng))  # before the tail: not sent
        tail = await SessionTail(store, "sess-tail", idle_s=0.2).start()
        try:
            stream = tail.__aiter__()
            assert await anext(stream) is None  # nothing new: a keep-alive after idle_s
            second = _request(["sess-tail"], rng)
            await ingestor.export(second)
            await ingestor.export(second)  # a retry: stored once, so sent once
            data = await anext(stream)
            got = [span.span_id for rs in data.resource_spans for ss in rs.scope_spans for span in ss.spans]
            assert got == [s.span_id for s in second.resource_spans[0].scope_spans[0].spans]
            assert await anext(stream) is None
        finally:
            await tail.close()
            await store.close()

    asyncio.run(run())
