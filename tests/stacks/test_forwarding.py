"""Forwarding (docs/interface.md, forwarding): every span reaches real OTLP receivers downstream,
enriched with its session; a downstream outage never holds ingest, the queue bound holds, drops
are counted, retries follow the OTLP rules, and shutdown drains within its bound."""

from __future__ import annotations

import grpc
import pytest

from otel_sessions.exporter.forward.retry import retry_after_seconds
from tests.stacks.helpers import attributes, metric, send, tracer, wait_until
from tests.support import RunningService

SENT = "otel_sessions_forward_spans_sent_total"
DROPPED = "otel_sessions_forward_spans_dropped_total"
RETRIES = "otel_sessions_forward_retries_total"
QUEUED = "otel_sessions_forward_queue_spans"


def _session_trace(session_id: str | None, children: int = 2, **ids):
    """One trace: a root (naming ``session_id`` when given) and ``children`` spans without ids."""
    t, memory = tracer()
    root_attributes = {"session.id": session_id, **ids} if session_id else {}
    with t.start_as_current_span("root", attributes=root_attributes):
        for i in range(children):
            with t.start_as_current_span(f"child {i}"):
                pass
    spans = memory.get_finished_spans()
    named = [s for s in spans if s.attributes.get("session.id")]
    unnamed = [s for s in spans if not s.attributes.get("session.id")]
    return named, unnamed


def _by_name(spans) -> dict:
    return {span.name: attributes(span) for span in spans}


def test_every_span_arrives_enriched_at_grpc_and_http_receivers(redis_url, grpc_downstream, http_downstream):
    with RunningService(redis_url, forward=[grpc_downstream.url, http_downstream.url],
                        forward_join_wait="500ms") as service:
        # 1. one request: a root naming session, user and thread, children without ids (joined locally)
        named, unnamed = _session_trace("sess-f1", **{"user.id": "u-1", "gen_ai.conversation.id": "thr-1"})
        send(service.grpc_endpoint, named + unnamed)
        # 2. the trace names its session first; its other spans come in a later request (joined
        #    by trace through the store), and the thread and user come from the session's summary
        named2, unnamed2 = _session_trace("sess-f2", **{"user.id": "u-2", "gen_ai.conversation.id": "thr-2"})
        send(service.grpc_endpoint, named2)
        send(service.grpc_endpoint, unnamed2)
        # 3. a trace that never names a session: forwarded as it is
        _none, lonely = _session_trace(None, children=1)
        send(service.grpc_endpoint, lonely)
        assert service.session("sess-f2").span_count == 3  # stored in Redis as usual

        for downstream in (grpc_downstream, http_downstream):
            spans = downstream.wait_for_spans(8)
            assert len(spans) == 8
            ids = [(s.trace_id, s.span_id) for s in spans]
            assert len(set(ids)) == 8
            by_trace: dict = {}
            for span in spans:
                by_trace.setdefault(span.trace_id, []).append(attributes(span))
            sessions = {}
            for trace_spans in by_trace.values():
                for attrs in trace_spans:
                    sessions.setdefault(attrs.get("session.id"), []).append(attrs)
            assert len(sessions["sess-f1"]) == 3 and len(sessions["sess-f2"]) == 3
            for attrs in sessions["sess-f1"]:
                assert attrs["user.id"] == "u-1" and attrs["gen_ai.conversation.id"] == "thr-1"
            for attrs in sessions["sess-f2"]:  # including the two spans joined through Redis
                assert attrs["user.id"] == "u-2" and attrs["gen_ai.conversation.id"] == "thr-2"
            assert len(sessions[None]) == 2  # the lonely trace: no ids invented
            assert all("user.id" not in a for a in sessions[None])
        assert set(http_downstream.content_types) == {"application/x-protobuf"}
        assert wait_until(lambda: metric(SENT, destination=grpc_downstream.url) == 8, message="sent counter")
        # the downstream records a request before it answers, so the counter may lag a moment
        assert wait_until(lambda: metric(SENT, destination=http_downstream.url) == 8, message="sent counter")


def test_first_value_wins_when_forwarding(redis_url, grpc_downstream):
    t, memory = tracer()
    with t.start_as_current_span("root", attributes={"session.id": "sess-own", "user.id": "u-a"}):
        with t.start_as_current_span("child", attributes={"user.id": "u-b"}):
            pass
    with RunningService(redis_url, forward=[grpc_downstream.url]) as service:
        send(service.grpc_endpoint, memory.get_finished_spans())
        spans = _by_name(grpc_downstream.wait_for_spans(2))
    assert spans["child"]["user.id"] == "u-b"  # never overwritten
    assert spans["child"]["session.id"] == "sess-own"


@pytest.mark.parametrize("kind", ["grpc", "http"])
def test_downstream_outage_bounded_queue_counted_drops_then_recovery(redis_url, grpc_downstream, http_downstream,
                                                                     kind):
    downstream = grpc_downstream if kind == "grpc" else http_downstream
    url = downstream.url
    downstream.stop()
    with RunningService(redis_url, forward=[url], forward_queue=10) as service:
        for i in range(5):  # 5 requests of 4 spans: 2 fit in the bound of 10, 3 are dropped
            named, unnamed = _session_trace(f"sess-out-{kind}-{i}", children=3)
            send(service.grpc_endpoint, named + unnamed)
        for i in range(5):  # ingest into Redis went on
            assert service.session(f"sess-out-{kind}-{i}").span_count == 4
        assert metric(DROPPED, destination=url, reason="queue_full") == 12
        assert metric(QUEUED, destination=url) == 8
        wait_until(lambda: metric(RETRIES, destination=url) >= 1, message="a retry")

        downstream.start()  # the same port again
        spans = downstream.wait_for_spans(8)
        wait_until(lambda: metric(QUEUED, destination=url) == 0, message="queue drained")
        assert len(spans) == 8
        assert {attributes(s)["session.id"] for s in spans} == {f"sess-out-{kind}-0", f"sess-out-{kind}-1"}
        assert metric(SENT, destination=url) == 8
        assert metric(DROPPED, destination=url, reason="queue_full") == 12


def test_grpc_retry_rules(redis_url, grpc_downstream):
    url = grpc_downstream.url
    grpc_downstream.fail_next(
        (grpc.StatusCode.UNAVAILABLE, None),                 # retryable
        (grpc.StatusCode.RESOURCE_EXHAUSTED, 0.05),          # retryable: it carries RetryInfo
        (grpc.StatusCode.RESOURCE_EXHAUSTED, None),          # not retryable without RetryInfo
        (grpc.StatusCode.INVALID_ARGUMENT, None),            # permanent
    )
    with RunningService(redis_url, forward=[url]) as service:
        named, unnamed = _session_trace("sess-r1", children=1)
        send(service.grpc_endpoint, named + unnamed)  # UNAVAILABLE, RESOURCE_EXHAUSTED+RetryInfo, then drop
        wait_until(lambda: metric(DROPPED, destination=url, reason="rejected") == 2, message="first drop")
        assert metric(RETRIES, destination=url) == 2
        named, unnamed = _session_trace("sess-r2", children=1)
        send(service.grpc_endpoint, named + unnamed)  # INVALID_ARGUMENT: dropped at once
        wait_until(lambda: metric(DROPPED, destination=url, reason="rejected") == 4, message="second drop")
        named, unnamed = _session_trace("sess-r3", children=1)
        send(service.grpc_endpoint, named + unnamed)  # accepted
        spans = grpc_downstream.wait_for_spans(2)
    assert {attributes(s)["session.id"] for s in spans} == {"sess-r3"}
    assert grpc_downstream.attempts == 5


def test_http_retry_rules(redis_url, http_downstream):
    url = http_downstream.url
    http_downstream.fail_next((503, "0"), (429, None), (502, None), (504, "0"), (400, None))
    with RunningService(redis_url, forward=[url]) as service:
        named, unnamed = _session_trace("sess-h1", children=1)
        send(service.grpc_endpoint, named + unnamed)  # 503, 429, 502, 504 retried, then 400: dropped
        wait_until(lambda: metric(DROPPED, destination=url, reason="rejected") == 2, message="drop on 400")
        assert metric(RETRIES, destination=url) == 4
        named, unnamed = _session_trace("sess-h2", children=1)
        send(service.grpc_endpoint, named + unnamed)
        spans = http_downstream.wait_for_spans(2)
    assert {attributes(s)["session.id"] for s in spans} == {"sess-h2"}


def test_retry_after_header_forms():
    assert retry_after_seconds("3") == 3.0
    assert retry_after_seconds("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412480 - 10) == 10.0
    assert retry_after_seconds("soon") is None and retry_after_seconds(None) is None


def test_shutdown_drains_what_is_queued(redis_url, grpc_downstream):
    url = grpc_downstream.url
    service = RunningService(redis_url, forward=[url]).start()
    try:
        for i in range(20):
            named, unnamed = _session_trace(f"sess-d{i}", children=1)
            send(service.grpc_endpoint, named + unnamed)
    finally:
        service.stop()
    # stop() returned: everything acknowledged by the service was forwarded before it did
    assert len(grpc_downstream.spans()) == 40
    assert metric(SENT, destination=url) == 40


def test_shutdown_is_bounded_when_the_downstream_is_down(redis_url, grpc_downstream):
    url = grpc_downstream.url
    grpc_downstream.stop()
    service = RunningService(redis_url, forward=[url]).start()
    try:
        for i in range(3):
            named, unnamed = _session_trace(f"sess-s{i}", children=1)
            send(service.grpc_endpoint, named + unnamed)
        service.call(service.service.stop(grace=0.3))
    finally:
        service.stop()
    assert metric(DROPPED, destination=url, reason="shutdown") == 6
    assert metric(QUEUED, destination=url) == 0


def test_a_second_otel_sessions_downstream_stores_the_forwarded_sessions(redis_server):
    """Stock wire format end to end: otel-sessions forwarding to otel-sessions (gRPC and HTTP)."""
    import redis

    urls = []
    for db in (5, 6, 7):
        url = redis_server.url.rsplit("/", 1)[0] + f"/{db}"
        redis.Redis.from_url(url).flushdb()
        urls.append(url)
    with RunningService(urls[1]) as via_grpc, RunningService(urls[2]) as via_http:
        with RunningService(urls[0], forward=[f"grpc://{via_grpc.grpc_endpoint}", via_http.http_url]) as upstream:
            named, unnamed = _session_trace("sess-chain", **{"user.id": "u-c"})
            send(upstream.grpc_endpoint, named)
            send(upstream.grpc_endpoint, unnamed)  # joined upstream; downstream gets them with session.id
        for downstream in (via_grpc, via_http):
            summary = wait_until(lambda d=downstream: (s := d.session("sess-chain")) and s.span_count == 3 and s,
                                 message="forwarded session stored downstream")
            assert summary.user_id == "u-c"


def test_forwarding_settings_are_validated():
    from otel_sessions.exporter.serve.settings import Settings, SettingsError

    s = Settings.resolve({"forward": ["grpc://a:4317"]}, env={"OTEL_SESSIONS_FORWARD_QUEUE": "500",
                                                               "OTEL_SESSIONS_FORWARD_RETRY_MAX": "30s"})
    assert (s.forward_queue, s.forward_retry_max, s.forward_timeout) == (500, 30.0, 10.0)
    for args, names in (({"forward_queue": "0"}, "--forward-queue / OTEL_SESSIONS_FORWARD_QUEUE"),
                        ({"forward_retry_max": "soon"}, "--forward-retry-max / OTEL_SESSIONS_FORWARD_RETRY_MAX"),
                        ({"forward_timeout": "0s"}, "--forward-timeout / OTEL_SESSIONS_FORWARD_TIMEOUT")):
        with pytest.raises(SettingsError, match=names):
            Settings.resolve(args, env={})
