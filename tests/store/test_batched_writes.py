"""Session writes batched into few ``write_session.lua`` calls: the replies come back one per
write and in order, each session is written as if alone, and a span write and a log write of
one session keep their order (the first value of a summary field comes from the first)."""

from __future__ import annotations

import asyncio
import random
import time

from otel_sessions.exporter.ingest.groups import Group, SpanRecord, span_digest
from otel_sessions.exporter.ingest.log_grouping import LogGroup, LogRecordFacts, record_digest
from otel_sessions.exporter.store import sessions as sessions_module
from otel_sessions.exporter.store.sessions import SessionStore, StoreSettings

SCOPE = (b"\n\x16\n\x0cservice.name\x12\x06\n\x04test", "", b"\n\x03lib", "")


def _store(redis_url: str) -> SessionStore:
    settings = StoreSettings(key_prefix="ots", retention_s=3600, thread_idle_s=600, idle_after_s=300,
                             abandon_after_s=1800, max_spans_per_session=1000, publish_tail=False)
    return SessionStore.connect(redis_url, settings)


def _spans(rng: random.Random, count: int, name: str | None = None, body_size: int = 100) -> Group:
    group = Group(name=name)
    trace_id = rng.randbytes(16)
    now_us = int(time.time() * 1e6)
    for _ in range(count):
        span_id = rng.randbytes(8)
        group.spans.append(SpanRecord(SCOPE, rng.randbytes(body_size), span_digest(trace_id, span_id), trace_id,
                                      span_id, 0, now_us, now_us + 10, 1, 2, 0.0, 0, 0, 0, None))
    return group


def _records(rng: random.Random, name: str) -> LogGroup:
    group = LogGroup(name=name)
    body = rng.randbytes(40)
    now_ns = time.time_ns()
    group.records.append(LogRecordFacts(SCOPE, body, record_digest(body, b"", now_ns), b"", now_ns // 1000,
                                        False, None))
    return group


def test_many_sessions_in_few_calls_answer_one_reply_each_in_order(redis_url, monkeypatch):
    calls = []
    original = sessions_module.SessionStore._session_calls
    monkeypatch.setattr(sessions_module.SessionStore, "_session_calls",
                        lambda self, writes, now_ms: calls.append(len(writes)) or original(self, writes, now_ms))

    async def run() -> None:
        store = _store(redis_url)
        await store.load_scripts()
        rng = random.Random(3)
        groups = [(f"sess_batch_{i}", _spans(rng, 1 + i % 7)) for i in range(150)]
        writes = [group.to_write(sid) for sid, group in groups]
        _joined, replies = await store.write(None, writes, int(time.time() * 1000))
        assert [reply.status for reply in replies] == [1 + i % 7 for i in range(150)]
        assert [reply.figures.spans for reply in replies] == [1 + i % 7 for i in range(150)]
        # the very same writes again: every span was stored before, nothing is counted twice
        _joined, again = await store.write(None, writes, int(time.time() * 1000))
        assert [reply.status for reply in again] == [0] * 150
        # one more span in some of them: those are refused with the mask of the new span only
        grown = [(sid, Group(name=None, spans=[*group.spans, *_spans(rng, 1).spans])) if i % 2 else (sid, group)
                 for i, (sid, group) in enumerate(groups)]
        _joined, partly = await store.write(None, [group.to_write(sid) for sid, group in grown],
                                            int(time.time() * 1000))
        for i, reply in enumerate(partly):
            if i % 2:
                assert reply.status == -1 and reply.new_mask == b"0" * (1 + i % 7) + b"1"
            else:
                assert reply.status == 0
        summaries = await store.get_summaries([sid for sid, _group in groups])
        assert [summary.span_count for summary in summaries] == [1 + i % 7 for i in range(150)]
        await store.close()

    asyncio.run(run())
    assert calls == [150, 150, 150]


def test_the_sessions_of_a_request_share_calls_up_to_the_bounds(redis_url):
    store = _store(redis_url)
    rng = random.Random(5)
    small = [_spans(rng, 2).to_write(f"s{i}") for i in range(100)]
    assert len(store._session_calls(small, 0)) == 2  # SESSIONS_PER_CALL = 64
    large = [_spans(rng, 1, body_size=40_000).to_write(f"l{i}") for i in range(4)]
    assert len(store._session_calls(large, 0)) == 2  # two 40 KB chunks reach CALL_CHUNK_BYTES
    assert store._session_calls([], 0) == []


def test_a_span_write_and_a_log_write_of_one_session_keep_their_order(redis_url):
    async def run() -> tuple[str, str]:
        store = _store(redis_url)
        await store.load_scripts()
        rng = random.Random(7)
        now_ms = int(time.time() * 1000)
        await store.write(None, [_spans(rng, 2, name="from spans").to_write("sess_order_a"),
                                 _records(rng, "from records").to_write("sess_order_a")], now_ms)
        await store.write(None, [_records(rng, "from records").to_write("sess_order_b"),
                                 _spans(rng, 2, name="from spans").to_write("sess_order_b")], now_ms)
        first, second = await store.get_summaries(["sess_order_a", "sess_order_b"])
        await store.close()
        return first.name, second.name

    assert asyncio.run(run()) == ("from spans", "from records")
