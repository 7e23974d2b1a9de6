"""Forwarding's metrics, each with a ``destination`` label (the ``--forward`` URL).

``otel_sessions_forward_spans_sent_total``, ``otel_sessions_forward_spans_dropped_total``
(and ``reason``: ``queue_full``, ``rejected``, ``retries_exhausted`` or ``shutdown``),
``otel_sessions_forward_retries_total``, ``otel_sessions_forward_queue_spans``; and, without
a label, ``otel_sessions_forward_spans_enriched_total``.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge

__all__ = ["FORWARD_METRICS"]


class _ForwardMetrics:
    def __init__(self) -> None:
        self.sent = Counter("otel_sessions_forward_spans_sent_total",
                            "Spans a forward destination acknowledged", ["destination"])
        self.dropped = Counter("otel_sessions_forward_spans_dropped_total",
                               "Spans not forwarded: queue_full, rejected, retries_exhausted or shutdown",
                               ["destination", "reason"])
        self.retries = Counter("otel_sessions_forward_retries_total",
                               "Export requests to a forward destination that will be tried again", ["destination"])
        self.queued = Gauge("otel_sessions_forward_queue_spans",
                            "Spans waiting for a forward destination (including the batch being sent)",
                            ["destination"], multiprocess_mode="livesum")
        self.enriched = Counter("otel_sessions_forward_spans_enriched_total",
                                "Forwarded spans given session.id, gen_ai.conversation.id or user.id")


FORWARD_METRICS = _ForwardMetrics()
