"""The native span scanner beside upb's parse and the pure-Python grouping: spans/s per core.

    .venv/bin/python bench/scan.py [--requests 20] [--rounds 7]

On the same ``--requests`` OTLP export requests of 512 realistic LLM spans each
(``bench/workload.py``, encoded by the stock OTLP exporter's encoder), in one process:

* upb parse: ``ExportTraceServiceRequest.FromString`` (what a parse-only receiver does; no
  Python object per span is made until one is read);
* native scanner: ``_scan.scan`` alone (the per-span values grouping needs, as Python objects);
* native grouping: ``NativeBatchBuilder.build_bytes``, the scanner and the placement of every
  span (digests, groups, labels, figures): what the receiver runs per request;
* pure-Python grouping: ``BatchBuilder.build_bytes``, upb parse and the attribute walk over
  the parsed messages (the fallback path).

Rounds alternate the four; CPU time of this process (``time.process_time``) per span, medians
over rounds, so the ratios hold on a shared, noisy machine.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import workload  # noqa: E402
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest  # noqa: E402

from otel_sessions.exporter.ingest import native  # noqa: E402
from otel_sessions.exporter.ingest.grouping import BatchBuilder  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    problem = native.scanner_problem()
    if problem is not None:
        sys.exit(f"bench/scan.py: {problem}")
    bodies = list(workload.export_requests(args.requests))
    spans = sum(len(ss.spans) for body in bodies
                for rs in ExportTraceServiceRequest.FromString(body).resource_spans for ss in rs.scope_spans)
    scanned = [native._scan.scan(body) for body in bodies]
    assert all(isinstance(s, list) for s in scanned), "the workload is in canonical encoding"
    pure, fast = BatchBuilder(), native.NativeBatchBuilder()
    runs = {
        "upb parse (FromString)": ExportTraceServiceRequest.FromString,
        "native scanner (_scan.scan)": native._scan.scan,
        "native grouping (NativeBatchBuilder)": fast.build_bytes,
        "pure-Python grouping (BatchBuilder)": pure.build_bytes,
    }
    print(f"{len(bodies)} requests, {spans} spans, {sum(map(len, bodies)) / spans:.0f} bytes per span; "
          f"{args.rounds} rounds, medians of CPU time")
    timings: dict[str, list[float]] = {label: [] for label in runs}
    for _ in range(args.rounds):
        for label, run in runs.items():
            start = time.process_time()
            for body in bodies:
                run(body)
            timings[label].append((time.process_time() - start) / spans)
    parse = statistics.median(timings["upb parse (FromString)"])
    for label, values in timings.items():
        per_span = statistics.median(values)
        print(f"{label:38s} {per_span * 1e6:6.2f} µs per span  {1 / per_span:10,.0f} spans/s per core  "
              f"{per_span / parse:5.2f}x the parse")


if __name__ == "__main__":
    main()
