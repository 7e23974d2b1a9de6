"""Overhead of SessionSpanProcessor per span, against no processor and BaggageSpanProcessor.

    .venv/bin/python bench/processor_overhead.py [--spans 100000] [--rounds 7]

Each round creates and ends ``--spans`` spans (``tracer.start_span(name).end()``) with each
setup in turn (rounds interleaved, so drift hits all three alike), and prints the median
microseconds per span of each setup and the ratios:

- ``none``: a TracerProvider with no span processor;
- ``baggage``: the contrib ``BaggageSpanProcessor`` copying the four session keys from W3C
  baggage (session, thread, user, name), the baggage attached around the loop;
- ``session``: ``SessionSpanProcessor`` inside ``session(...)`` with the same four values.

Targets: ``session`` adds at most 25% to ``none``, and is no slower than ``baggage``.
"""

from __future__ import annotations

import argparse
import gc
import statistics
import sys
import time
from collections.abc import Callable

from opentelemetry import baggage
from opentelemetry import context as otel_context
from opentelemetry.processor.baggage import BaggageSpanProcessor
from opentelemetry.sdk.trace import TracerProvider

from otel_sessions.processor import SessionSpanProcessor, session
from otel_sessions.processor.attributes import BAGGAGE_KEYS, SESSION_ID, SESSION_NAME, THREAD_ID, USER_ID

IDS = {
    SESSION_ID: "sess_0123456789abcdef0123456789abcdef",
    THREAD_ID: "thrd_0123456789abcdef0123456789abcdef",
    USER_ID: "user-4242",
    SESSION_NAME: "Customer Support: Billing Issue #4532",
}


def _loop(provider: TracerProvider, spans: int) -> float:
    tracer = provider.get_tracer("bench")
    start_span = tracer.start_span
    gc.collect()
    started = time.perf_counter()
    for _ in range(spans):
        start_span("op").end()
    return (time.perf_counter() - started) / spans * 1e6


def run_none(spans: int) -> float:
    return _loop(TracerProvider(), spans)


def run_baggage(spans: int) -> float:
    provider = TracerProvider()
    keys = frozenset(BAGGAGE_KEYS)
    provider.add_span_processor(BaggageSpanProcessor(lambda key: key in keys))
    ctx = None
    for key, value in IDS.items():
        ctx = baggage.set_baggage(key, value, ctx)
    token = otel_context.attach(ctx)
    try:
        return _loop(provider, spans)
    finally:
        otel_context.detach(token)


def run_session(spans: int) -> float:
    provider = TracerProvider()
    provider.add_span_processor(SessionSpanProcessor(baggage=False))
    with session(
        IDS[SESSION_ID], thread_id=IDS[THREAD_ID], user_id=IDS[USER_ID], name=IDS[SESSION_NAME]
    ):
        return _loop(provider, spans)


SETUPS: dict[str, Callable[[int], float]] = {"none": run_none, "baggage": run_baggage, "session": run_session}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spans", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args(argv)
    for run in SETUPS.values():  # warm-up
        run(min(args.spans, 5_000))
    results: dict[str, list[float]] = {name: [] for name in SETUPS}
    for _ in range(args.rounds):
        for name, run in SETUPS.items():
            results[name].append(run(args.spans))
    medians = {name: statistics.median(values) for name, values in results.items()}
    print(f"python {sys.version.split()[0]}, {args.spans} spans x {args.rounds} rounds, median us/span:")
    for name, value in medians.items():
        print(f"  {name:8s} {value:6.2f} us/span")
    print(f"  session / none    = {medians['session'] / medians['none']:.3f}  (target <= 1.25)")
    print(f"  session / baggage = {medians['session'] / medians['baggage']:.3f}  (target <= 1.00)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
