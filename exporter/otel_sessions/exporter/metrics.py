"""The service's own metrics, exposed in Prometheus text format on ``GET /metrics``.

With ``--workers`` above one, every worker writes to ``PROMETHEUS_MULTIPROC_DIR`` (set by
``serve`` before the workers start) and a scrape of any worker reports the sum.
"""

from __future__ import annotations

import os

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest, multiprocess

__all__ = ["METRICS", "render"]


class _Metrics:
    def __init__(self) -> None:
        self.requests = Counter(
            "otel_sessions_export_requests_total", "OTLP export requests by transport and outcome",
            ["transport", "outcome"])
        self.spans_received = Counter("otel_sessions_spans_received_total", "Spans received in valid requests")
        self.spans_stored = Counter("otel_sessions_spans_stored_total", "Spans stored for the first time")
        self.spans_duplicate = Counter(
            "otel_sessions_spans_duplicate_total", "Spans received again (retries) and not counted twice")
        self.spans_rejected = Counter(
            "otel_sessions_spans_rejected_total", "Spans refused (partial success), e.g. invalid trace or span id")
        self.spans_joined = Counter(
            "otel_sessions_spans_joined_by_trace_total", "Spans without a session id joined to their trace's session")
        self.spans_parked = Counter(
            "otel_sessions_spans_unjoined_total", "Spans whose trace has named no session yet (kept by trace id)")
        self.invalid_ids = Counter(
            "otel_sessions_invalid_ids_total", "Session, thread or user ids of spans and log records refused for grouping (too long, control characters)")
        self.invalid_values = Counter(
            "otel_sessions_invalid_values_total",
            "Values dropped or clamped from kept spans and log records (non-finite or out-of-range numbers, times)")
        self.redacted_values = Counter(
            "otel_sessions_redacted_values_total",
            "Attribute values (and log bodies) changed by --redact-attributes or --redact-patterns on ingest")
        self.ingest_native = Gauge(
            "otel_sessions_ingest_native",
            "1 when OTLP span requests are read by the native span scanner, 0 on the pure-Python path",
            multiprocess_mode="min")
        self.native_fallbacks = Counter(
            "otel_sessions_ingest_native_fallbacks_total",
            "Requests the native scanner left to the pure-Python path (not in canonical protobuf encoding)")
        self.redis_errors = Counter("otel_sessions_redis_errors_total", "Store operations that failed on Redis")
        # OTLP logs: the same figures, counted in log records
        self.log_requests = Counter(
            "otel_sessions_log_export_requests_total", "OTLP log export requests by transport and outcome",
            ["transport", "outcome"])
        self.logs_received = Counter("otel_sessions_log_records_received_total",
                                     "Log records received in valid requests")
        self.logs_stored = Counter("otel_sessions_log_records_stored_total", "Log records stored for the first time")
        self.logs_duplicate = Counter(
            "otel_sessions_log_records_duplicate_total", "Log records received again (retries) and not counted twice")
        self.logs_rejected = Counter(
            "otel_sessions_log_records_rejected_total",
            "Log records refused (partial success): invalid trace or span id, or neither a session nor a trace id")
        self.logs_joined = Counter(
            "otel_sessions_log_records_joined_by_trace_total",
            "Log records without a session id joined to their trace's session")
        self.logs_parked = Counter(
            "otel_sessions_log_records_unjoined_total",
            "Log records whose trace has named no session yet (kept by trace id)")
        self.request_seconds = Histogram(
            "otel_sessions_export_request_duration_seconds", "Time to handle an OTLP export request",
            ["transport"], buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))
        # ingest/inflight.py: request bytes held now (summed over workers) and the most held at once
        # (the highest of any one worker), against --max-inflight-bytes
        self.inflight_bytes = Gauge(
            "otel_sessions_inflight_bytes", "OTLP request bytes being read, decoded or stored now",
            multiprocess_mode="livesum")
        self.inflight_bytes_peak = Gauge(
            "otel_sessions_inflight_bytes_peak", "Most OTLP request bytes held at once by one process since it started",
            multiprocess_mode="livemax")
        self.log_request_seconds = Histogram(
            "otel_sessions_log_export_request_duration_seconds", "Time to handle an OTLP log export request",
            ["transport"], buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))

        # per tenant (--tenants; "default" without a tenants file): the label's values are the
        # tenants of the file, so its cardinality is bounded by the file
        self.tenant_spans_received = Counter(
            "otel_sessions_tenant_spans_received_total", "Spans received in valid requests, by tenant", ["tenant"])
        self.tenant_spans_stored = Counter(
            "otel_sessions_tenant_spans_stored_total", "Spans stored for the first time, by tenant", ["tenant"])
        self.tenant_spans_refused = Counter(
            "otel_sessions_tenant_spans_refused_total",
            "Spans of requests refused by the tenant's quota (429 / RESOURCE_EXHAUSTED), by tenant and quota",
            ["tenant", "quota"])
        self.tenant_logs_received = Counter(
            "otel_sessions_tenant_log_records_received_total", "Log records received in valid requests, by tenant",
            ["tenant"])
        self.tenant_logs_stored = Counter(
            "otel_sessions_tenant_log_records_stored_total", "Log records stored for the first time, by tenant",
            ["tenant"])
        self.tenant_logs_refused = Counter(
            "otel_sessions_tenant_log_records_refused_total",
            "Log records of requests refused by the tenant's quota (429 / RESOURCE_EXHAUSTED), by tenant and quota",
            ["tenant", "quota"])
        self.tenant_sessions = Gauge(
            "otel_sessions_tenant_sessions", "Sessions of the tenant within the retention (read from Redis, sampled)",
            ["tenant"], multiprocess_mode="mostrecent")
        self.tenant_redis_bytes = Gauge(
            "otel_sessions_tenant_redis_bytes",
            "Estimated Redis memory of the tenant's sessions: the MEMORY USAGE of a sample of its sessions' keys, "
            "scaled to its session count (sampled)", ["tenant"], multiprocess_mode="mostrecent")


METRICS = _Metrics()


def render() -> bytes:
    """The current metrics in Prometheus text format."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry)
    from prometheus_client import REGISTRY

    return generate_latest(REGISTRY)
