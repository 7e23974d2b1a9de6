"""Lookup latency with a large store: 100,000 sessions of 10 spans over 1,000 users.

    .venv/bin/python bench/lookup.py [--sessions 100000] [--requests 300]

1. Starts its own redis-server (EmbeddedRedis, free port, no persistence).
2. Fills it through the store's write path (``SessionStore.write``), not through an exporter:
   every session's part of a batch holds the same 10 real OTLP span bodies (two traces) with
   per-session span ids, times, tokens and costs, 500
   sessions per write. One more session of 1,000 spans (250 four-span turns) is written from
   real export requests made with the OpenTelemetry SDK (bench/workload.py).
3. Runs ``otel-sessions serve --redis-url ...`` as a subprocess and measures over HTTP (one
   kept-alive connection, sequential requests after a warm-up): the first page of
   ``GET /v1/sessions``, a user filter, sort by cost, ``GET /v1/sessions/{id}`` of the
   1,000-span session, and the transcript (``GET /v1/threads/{id}/messages``) of a thread of
   4 sessions and 200 messages whose 100 model calls each re-send the thread's history
   (GenAI ``gen_ai.input.messages``, 4.7 MB of spans). Prints p50 and p99 per query and the
   targets (p99 < 20 ms per list query, < 50 ms for the 1,000-span session and for the
   transcript); for information, a trace by id through the Jaeger API (which reads every
   epoch of the trace map within the retention).
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import os
import random
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans  # noqa: E402

from bench import workload  # noqa: E402
from otel_sessions.exporter.ingest.grouping import BatchBuilder  # noqa: E402
from otel_sessions.exporter.ingest.groups import Batch, Group, SpanRecord, span_digest  # noqa: E402
from otel_sessions.exporter.ingest.ingestor import Ingestor  # noqa: E402
from otel_sessions.exporter.serve.settings import Settings  # noqa: E402
from otel_sessions.exporter.store.embedded_redis import EmbeddedRedis  # noqa: E402
from otel_sessions.exporter.store.sessions import SessionStore  # noqa: E402

BIG_SESSION = "sess_big_1000_spans"
CHAT_THREAD = "thrd_chat_200_messages"


def _template_spans() -> list[tuple[tuple, bytes]]:
    """(scope key, span bytes) of 10 real spans (two turns of the workload, trimmed to 10)."""
    provider, sink = workload.make_provider()
    tracer = provider.get_tracer("bench")
    rng = random.Random(3)
    while len(sink.spans) < 10:
        workload.turn_spans(tracer, rng, "sess_template", "user-x", "thrd_x", "template")
    request = encode_spans(sink.spans[:10])
    batch = BatchBuilder().build(request.resource_spans)
    return [(record.scope, record.body) for record in next(iter(batch.sessions.values())).spans]


def _group(i: int, rng: random.Random, template: list[tuple[tuple, bytes]], now_us: int,
           users: int) -> tuple[str, Group]:
    session_id = f"sess_{i:06d}_{rng.getrandbits(40):010x}"
    group = Group(name=f"Support chat #{i}", user_id=f"user-{i % users:04d}", thread_id=f"thrd_{i // 3:06d}")
    start = now_us - rng.randrange(0, 20 * 3600 * 1_000_000)
    trace_ids = [rng.getrandbits(128).to_bytes(16, "big") for _ in range(2)]
    for k, (key, body) in enumerate(template):
        trace_id = trace_ids[k // 5]
        span_id = rng.getrandbits(64).to_bytes(8, "big")
        s = start + k * rng.randrange(100_000, 2_000_000)
        e = s + rng.randrange(50_000, 3_000_000)
        llm = k % 5 in (1, 3)
        tin, tout = (rng.randrange(200, 3000), rng.randrange(20, 600)) if llm else (0, 0)
        cost = (tin * 2.5 + tout * 10) / 1e6
        flags = (2 if k % 5 == 0 else 0) | (1 if rng.random() < 0.01 else 0)
        group.spans.append(SpanRecord(key, body, span_digest(trace_id, span_id), trace_id, span_id, flags, s, e,
                                      tin, tout, cost, 0, 0, 0, "invoke_agent router" if k % 5 == 0 else None))
    group.labels = {"s:support-bot", "m:gpt-4o-2024-08-06", "a:router", "t:search_orders"}
    group.metadata = {"plan": "pro" if i % 4 == 0 else "free"}
    return session_id, group


async def fill(url: str, sessions: int, users: int, per_write: int = 500) -> str:
    settings = Settings.resolve({"redis_url": url}, env={}).store_settings()
    store = SessionStore.connect(url, replace(settings, publish_tail=False))
    await store.load_scripts()
    ingestor = Ingestor(store, BatchBuilder())
    template = _template_spans()
    rng = random.Random(11)
    now_us = int(time.time() * 1e6)
    started = time.perf_counter()
    for first in range(0, sessions, per_write):
        batch = Batch()
        for i in range(first, min(sessions, first + per_write)):
            session_id, group = _group(i, rng, template, now_us, users)
            batch.sessions[session_id] = group
            batch.span_count += 10
        await ingestor.write(batch)
    took = time.perf_counter() - started
    print(f"filled {sessions:,} sessions ({sessions * 10:,} spans, {users:,} users) in {took:.1f}s")

    # one session of 1,000 spans from real export requests (250 turns of 4 spans)
    provider, sink = workload.make_provider()
    tracer = provider.get_tracer("bench")
    rng = random.Random(5)
    for _ in range(250):
        workload.turn_spans(tracer, rng, BIG_SESSION, "user-big", "thrd_big", "A long conversation")
    for offset in range(0, len(sink.spans), 200):
        await ingestor.write(ingestor.builder.build(encode_spans(sink.spans[offset:offset + 200]).resource_spans))
    summary = await store.get_session(BIG_SESSION, with_traces=True)
    print(f"big session: {summary.span_count} spans in {summary.trace_count} traces")

    # a thread of 4 sessions, 200 messages, every model call re-sending the history
    provider, sink = workload.make_provider()
    messages = workload.conversation_spans(provider.get_tracer("bench"), random.Random(9), CHAT_THREAD, "user-chat")
    for offset in range(0, len(sink.spans), 50):
        await ingestor.write(ingestor.builder.build(encode_spans(sink.spans[offset:offset + 50]).resource_spans))
    print(f"chat thread: {messages} messages in {len(sink.spans)} spans")
    await store.close()
    return summary.traces[0].trace_id


def serve(redis_url: str) -> tuple[subprocess.Popen, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_SESSIONS_")}
    process = subprocess.Popen(
        [sys.executable, "-m", "otel_sessions.exporter.cli", "serve", "--redis-url", redis_url,
         "--grpc-listen", "127.0.0.1:0", "--http-listen", "127.0.0.1:0", "--log-level", "warning"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    lines = []
    for line in process.stdout:
        lines.append(line)
        if line.strip().endswith("ready"):
            break
    match = re.search(r"OTLP/HTTP on http://127\.0\.0\.1:(\d+)", "".join(lines))
    if match is None:
        process.kill()
        raise SystemExit("serve did not start:\n" + "".join(lines))
    return process, match.group(1)


def measure(port: str, path: str, requests: int, warmup: int = 30) -> tuple[float, float, dict]:
    import json

    connection = http.client.HTTPConnection("127.0.0.1", int(port), timeout=30)
    times = []
    body = None
    for n in range(warmup + requests):
        started = time.perf_counter()
        connection.request("GET", path)
        response = connection.getresponse()
        raw = response.read()
        elapsed = (time.perf_counter() - started) * 1000
        if response.status != 200:
            raise SystemExit(f"{path}: HTTP {response.status} {raw[:200]!r}")
        if n >= warmup:
            times.append(elapsed)
        body = raw
    connection.close()
    times.sort()
    p99 = times[min(len(times) - 1, int(round(0.99 * len(times))) - 1)]
    return statistics.median(times), p99, json.loads(body)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sessions", type=int, default=100_000)
    parser.add_argument("--users", type=int, default=1_000)
    parser.add_argument("--requests", type=int, default=300)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as data, EmbeddedRedis(data, port=None, persistent=False) as redis_server:
        trace_id = asyncio.run(fill(redis_server.url, args.sessions, args.users))
        process, port = serve(redis_server.url)
        try:
            queries = [
                ("list, first page (50, newest start)", "/v1/sessions", 20),
                ("list, user filter (user-0042)", "/v1/sessions?user_id=user-0042", 20),
                ("list, sort by cost (50, desc)", "/v1/sessions?sort_by=cost", 20),
                ("get session of 1,000 spans", f"/v1/sessions/{BIG_SESSION}", 50),
                ("transcript of a 200-message thread", f"/v1/threads/{CHAT_THREAD}/messages", 50),
                ("(info) list, status filter (bounded)", "/v1/sessions?status=failed", None),
                ("(info) list, page at offset 5,000", "/v1/sessions?offset=5000", None),
                ("(info) Jaeger API, one trace by id (4 spans)", f"/api/traces/{trace_id}", None),
            ]
            print(f"{'query':44} {'p50 ms':>8} {'p99 ms':>8}  target p99    result")
            failed = False
            for label, path, target in queries:
                p50, p99, body = measure(port, path, args.requests)
                if path.startswith("/api/traces/"):
                    what = f"{len(body['data'][0]['spans'])} spans, 24h of trace-map epochs read"
                elif path.endswith("/messages"):
                    what = f"{len(body['data'])} messages" + (" truncated" if body["truncated"] else "")
                elif "data" in body:
                    what = f"{len(body['data'])} of {body['total']:,}" + (" partial" if body.get("partial") else "")
                else:
                    what = f"{body['span_count']} spans, {len(body['traces'])} traces"
                verdict = "" if target is None else ("ok" if p99 < target else "MISSED")
                failed |= verdict == "MISSED"
                print(f"{label:44} {p50:8.2f} {p99:8.2f}  {('< ' + str(target)) if target else '':>8} {verdict:>3}"
                      f"  {what}")
            return 1 if failed else 0
        finally:
            process.send_signal(signal.SIGTERM)
            process.wait(30)


if __name__ == "__main__":
    sys.exit(main())
