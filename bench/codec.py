"""Chunk codecs on realistic LLM spans: stored bytes and CPU per span, ours beside deflate.

    .venv/bin/python bench/codec.py [--requests 20] [--rounds 5]

Chunks are built exactly as the store builds them (one per session and request, from
``bench/workload.py`` requests: 512 spans, ~50 sessions each), then compressed by:

* deflate level 1 with the preset dictionary: the store's format 2, the baseline
* Zstandard levels 1, 3 and 5 with that dictionary as raw content (level 3: format 3/4)
* Zstandard level 3 with ``ZDICT_5`` (the dictionary plus each attribute key's framing): the
  store's format 5, what it writes today

Prints the median over rounds of microseconds per span and bytes per span.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import zlib
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import workload  # noqa: E402
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest  # noqa: E402

from otel_sessions.exporter.ingest import groups as groups_module  # noqa: E402
from otel_sessions.exporter.ingest.grouping import BatchBuilder  # noqa: E402
from otel_sessions.exporter.store import codec as span_codec  # noqa: E402
from otel_sessions.exporter.store.codec import ZDICT, ZDICT_5, zstd  # noqa: E402


def raw_chunks(requests: int) -> tuple[list[bytes], int]:
    """The uncompressed content of every chunk the store writes for ``requests`` requests."""
    raws: list[bytes] = []

    def capture(groups, count, table):
        raws.append(span_codec.chunk_content(groups, table))
        return b""

    original = groups_module.encode_chunk  # where the groups call it
    groups_module.encode_chunk = capture
    try:
        builder = BatchBuilder()
        spans = 0
        for body in workload.export_requests(requests):
            batch = builder.build(ExportTraceServiceRequest.FromString(body).resource_spans)
            batch.join_local()
            for group in batch.sessions.values():
                group.payload()
            spans += batch.span_count
    finally:
        groups_module.encode_chunk = original
    return raws, spans


def codecs():
    def deflate(data: bytes) -> bytes:
        compressor = zlib.compressobj(1, zlib.DEFLATED, -15, zdict=ZDICT)
        return compressor.compress(data) + compressor.flush()

    out = {"deflate 1 + dict (format 2, baseline)": deflate}
    dictionary = zstd.ZstdDict(ZDICT, is_raw=True)
    for level in (1, 3, 5):
        compressor = zstd.ZstdCompressor(level=level, zstd_dict=dictionary)
        label = f"zstd {level} + dict" + (" (formats 3 and 4)" if level == 3 else "")
        out[label] = lambda data, c=compressor: c.compress(data, zstd.ZstdCompressor.FLUSH_FRAME)
    framed = zstd.ZstdCompressor(level=3, zstd_dict=zstd.ZstdDict(ZDICT_5, is_raw=True))
    out["zstd 3 + ZDICT_5 (format 5, ours)"] = lambda data: framed.compress(data, zstd.ZstdCompressor.FLUSH_FRAME)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    raws, spans = raw_chunks(args.requests)
    print(f"{len(raws)} chunks of {spans} spans, {sum(map(len, raws)) / spans:.0f} bytes per span uncompressed")
    timings: dict[str, list[float]] = {}
    sizes: dict[str, float] = {}
    for _ in range(args.rounds):
        for label, compress in codecs().items():
            start = time.perf_counter()
            out = [compress(raw) for raw in raws]
            timings.setdefault(label, []).append((time.perf_counter() - start) / spans * 1e6)
            sizes[label] = sum(map(len, out)) / spans
    for label in timings:
        print(f"{label:40s} {statistics.median(timings[label]):5.2f} µs per span  {sizes[label]:6.1f} bytes per span")


if __name__ == "__main__":
    main()
