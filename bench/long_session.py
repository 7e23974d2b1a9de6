"""Long-session benchmark: what a write costs Redis as one session grows, and the append-only file.

    .venv/bin/python bench/long_session.py [--spans 100000] [--per-write 10] [--probe 300]

One session receives ``--spans`` spans in writes of ``--per-write`` spans (realistic spans,
20 per trace, through the store's own session write). At 0, 10k, 50k and ``--spans`` spans
already stored, ``--probe`` more writes are timed inside Redis (``INFO commandstats``: the
script calls' microseconds per call, reset before each probe), beside the same number of
writes to new sessions in the same run as the baseline. At the end the append-only file (auto
rewrite off: no BGREWRITEAOF) is compared with Redis' used memory.

Targets (issue: long sessions): the Redis time of a write to a session holding 100,000 spans
at most 2x that of a write to a new session; the append-only file within 3x the used memory.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import redis  # noqa: E402

from otel_sessions.exporter.ingest.groups import Group, SpanRecord, span_digest  # noqa: E402
from otel_sessions.exporter.serve.settings import Settings  # noqa: E402
from otel_sessions.exporter.store.embedded_redis import EmbeddedRedis  # noqa: E402
from otel_sessions.exporter.store.sessions import SessionStore  # noqa: E402

SCOPE = (b"\n\x16\n\x0cservice.name\x12\x06\n\x04long", "", b"\n\x03lib", "")
BODY = bytes(range(256)) * 2  # stands in for a ~500-byte serialized span


def group(rng: random.Random, spans: int, start_us: int) -> Group:
    g = Group(user_id="u-long", thread_id="thrd_long", name="a long conversation")
    trace_id = rng.randbytes(16)
    for i in range(spans):
        if i % 20 == 0:
            trace_id = rng.randbytes(16)
        span_id = rng.randbytes(8)
        s = start_us + i * 1000
        g.spans.append(SpanRecord(SCOPE, BODY, span_digest(trace_id, span_id), trace_id, span_id, 0, s, s + 500,
                                  100, 20, 0.0003, 0, 0, 0, None))
    return g


async def probe(store: SessionStore, client: redis.Redis, writes: list, label: str) -> float:
    """Run ``writes`` (session id, Group) one at a time; µs of Redis time per script call."""
    client.config_resetstat()
    for session_id, g in writes:
        await store.write(None, [g.to_write(session_id)], int(time.time() * 1000))
    stats = client.info("commandstats").get("cmdstat_evalsha", {})
    per_call = stats.get("usec_per_call", 0.0)
    print(f"  {label:<34} {per_call:8.1f} µs per write ({len(writes)} writes)")
    return per_call


async def main(args: argparse.Namespace) -> None:
    folder = Path(tempfile.mkdtemp(prefix="otel-sessions-long-"))
    server = EmbeddedRedis(folder, port=0, persistent=True, extra_args=["--auto-aof-rewrite-percentage", "0"])
    server.start()
    try:
        client = redis.Redis.from_url(server.url)
        settings = Settings.resolve({"redis_url": server.url}, env={}).store_settings()
        store = SessionStore.connect(server.url, replace(settings, publish_tail=False))
        await store.load_scripts()
        rng = random.Random(1)
        now_us = int(time.time() * 1e6)
        stored = 0
        checkpoints = sorted({0, 10_000, 50_000, args.spans})
        ratios = []
        print(f"one session, {args.per_write} spans per write; Redis time per session write:")
        for checkpoint in checkpoints:
            while stored < checkpoint:
                g = group(rng, args.per_write, now_us + stored * 1000)
                await store.write(None, [g.to_write("sess_long")], int(time.time() * 1000))
                stored += args.per_write
            new = [(f"sess_new_{checkpoint}_{i}", group(rng, args.per_write, now_us)) for i in range(args.probe)]
            base = await probe(store, client, new, "new sessions (baseline)")
            grown = [("sess_long", group(rng, args.per_write, now_us + (stored + i * args.per_write) * 1000))
                     for i in range(args.probe)]
            long = await probe(store, client, grown, f"session at {stored:,} spans")
            stored += args.probe * args.per_write
            ratios.append((stored, long / base if base else float("nan")))
            print(f"  ratio {long / base:.2f}x")
        time.sleep(1.5)  # appendfsync everysec
        aof = sum(p.stat().st_size for p in (folder / "appendonlydir").glob("*"))
        used = client.info("memory")["used_memory"]
        print(f"append-only file {aof / 1e6:.1f} MB, used memory {used / 1e6:.1f} MB: {aof / used:.2f}x")
        summary = await store.get_session("sess_long")
        print(f"the long session: {summary.span_count:,} spans, {summary.trace_count:,} traces, "
              f"{summary.spans_dropped:,} bodies dropped beyond the cap")
        await store.close()
    finally:
        server.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--spans", type=int, default=100_000)
    parser.add_argument("--per-write", type=int, default=10)
    parser.add_argument("--probe", type=int, default=300)
    asyncio.run(main(parser.parse_args()))
