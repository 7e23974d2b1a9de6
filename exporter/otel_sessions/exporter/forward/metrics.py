"""Forwarding's metrics, each with a ``destination`` label (the ``--forward`` URL).

``otel_sessions_forward_spans_sent_total``, ``otel_sessions_forward_spans_dropped_total``
(and ``reason``: ``queue_full``, ``rejected``, ``retries_exhausted`` or ``shutdown``),
``otel_sessions_forward_retries_total``, ``otel_sessions_forward_queue_spans`` (held spans
included); and, without a destination label, ``otel_sessions_forward_spans_enriched_total``
and the join wait's (:mod:`.joinwait`): ``otel_sessions_forward_join_held_spans`` (gauge:
spans held now) and ``otel_sessions_forward_join_spans_total`` with ``result``: ``joined``
(their trace got its session while they were held), ``timeout`` (it had none when the wait
ended: sent as they are), ``overflow`` (not held: ``--forward-join-max-spans`` reached, sent
as they are at once) or ``shutdown`` (released as they are by ``stop()``). Log records
(``logs.py``) have their own: ``otel_sessions_forward_log_records_sent_total``,
``otel_sessions_forward_log_records_dropped_total`` (``reason``),
``otel_sessions_forward_queue_log_records``, ``otel_sessions_forward_log_records_enriched_total``
and the log join wait's (:mod:`.logjoin`) ``otel_sessions_forward_log_join_held_records`` and
``otel_sessions_forward_log_join_records_total`` (``result`` as for spans).
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge

__all__ = ["FORWARD_METRICS", "JOIN_RESULTS"]

#: The ``result`` label values of ``otel_sessions_forward_join_spans_total``.
JOIN_RESULTS = ("joined", "timeout", "overflow", "shutdown")


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
                            "Spans waiting for a forward destination (held spans and the batch being sent included)",
                            ["destination"], multiprocess_mode="livesum")
        self.enriched = Counter("otel_sessions_forward_spans_enriched_total",
                                "Forwarded spans given session.id, gen_ai.conversation.id or user.id")
        self.join_held = Gauge("otel_sessions_forward_join_held_spans",
                               "Spans held for --forward-join-wait until their trace names a session",
                               multiprocess_mode="livesum")
        join = Counter("otel_sessions_forward_join_spans_total",
                       "Spans whose trace had named no session when forwarded, by what came of the join "
                       "wait: joined, timeout, overflow or shutdown", ["result"])
        self.join = {result: join.labels(result) for result in JOIN_RESULTS}
        # log records (forward/logs.py): the same figures, in records
        self.logs_sent = Counter("otel_sessions_forward_log_records_sent_total",
                                 "Log records a forward destination acknowledged", ["destination"])
        self.logs_dropped = Counter("otel_sessions_forward_log_records_dropped_total",
                                    "Log records not forwarded: queue_full, rejected, retries_exhausted or shutdown",
                                    ["destination", "reason"])
        self.logs_queued = Gauge("otel_sessions_forward_queue_log_records",
                                 "Log records waiting for a forward destination (the batch being sent included)",
                                 ["destination"], multiprocess_mode="livesum")
        self.log_join_held = Gauge("otel_sessions_forward_log_join_held_records",
                                   "Log records held for --forward-join-wait until their trace names a session",
                                   multiprocess_mode="livesum")
        log_join = Counter("otel_sessions_forward_log_join_records_total",
                           "Log records whose trace had named no session when forwarded, by what came of the "
                           "join wait: joined, timeout, overflow or shutdown", ["result"])
        self.log_join = {result: log_join.labels(result) for result in JOIN_RESULTS}
        self.logs_enriched = Counter("otel_sessions_forward_log_records_enriched_total",
                                     "Forwarded log records given session.id, gen_ai.conversation.id or user.id")


FORWARD_METRICS = _ForwardMetrics()
