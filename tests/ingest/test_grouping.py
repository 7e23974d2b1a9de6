"""Grouping, without a server: which session a span belongs to (aliases and their precedence),
what it contributes (labels, metadata, flags, usage), and how bad values are handled.

Requests go through the builder the service selects (the native scanner unless
``OTEL_SESSIONS_NATIVE=0``; CI runs these tests both ways)."""

from __future__ import annotations

import math

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, Span

from otel_sessions.exporter.ingest.grouping import MAX_TIME_US
from otel_sessions.exporter.ingest.native import batch_builder
from otel_sessions.exporter.ingest.pricing import PriceTable
from otel_sessions.exporter.store.schema import SpanFlags

T1, T2 = bytes([1]) * 16, bytes([2]) * 16


def _set(kv_list, key: str, value) -> None:
    kv = kv_list.add(key=key)
    if isinstance(value, bool):
        kv.value.bool_value = value
    elif isinstance(value, int):
        kv.value.int_value = value
    elif isinstance(value, float):
        kv.value.double_value = value
    else:
        kv.value.string_value = value


def resource_spans(*spans: dict, service: str = "svc") -> list[ResourceSpans]:
    """One ResourceSpans holding ``spans`` (dicts: trace, id, parent, name, attrs, status, events)."""
    rs = ResourceSpans()
    _set(rs.resource.attributes, "service.name", service)
    ss = rs.scope_spans.add()
    for i, spec in enumerate(spans):
        span = ss.spans.add(trace_id=spec.get("trace", T1), span_id=spec.get("id", bytes([i + 1]) * 8),
                            parent_span_id=spec.get("parent", b""), name=spec.get("name", f"op {i}"),
                            start_time_unix_nano=spec.get("start", 1_000_000_000), end_time_unix_nano=spec.get("end", 2_000_000_000),
                            kind=spec.get("kind", Span.SPAN_KIND_INTERNAL))
        for key, value in spec.get("attrs", {}).items():
            _set(span.attributes, key, value)
        if spec.get("error"):
            span.status.code = span.status.STATUS_CODE_ERROR
        for event in spec.get("events", ()):
            span.events.add(name=event)
    return [rs]


def build(*spans: dict, service: str = "svc"):
    body = ExportTraceServiceRequest(resource_spans=resource_spans(*spans, service=service)).SerializeToString()
    return batch_builder(PriceTable()).build_bytes(body)


@pytest.mark.parametrize(("attrs", "session"), [
    ({"session.id": "a", "langfuse.session.id": "b"}, "a"),
    ({"langfuse.session.id": "b", "traceloop.association.properties.session_id": "c"}, "b"),
    ({"ai.telemetry.metadata.sessionId": "v", "mlflow.trace.session": "m"}, "v"),
    ({"gen_ai.conversation.id": "conv"}, "conv"),  # no session id: the conversation is the session
    ({"gen_ai.conversation.id": "conv", "agentmark.session_id": "am"}, "am"),
    ({"session.id": 42}, "42"),  # integers as decimal text
])
def test_the_first_alias_present_names_the_session(attrs, session):
    assert list(build({"attrs": attrs}).sessions) == [session]


def test_thread_and_user_aliases_and_first_value_wins():
    batch = build({"attrs": {"session.id": "s", "gen_ai.conversation.id": "t1", "enduser.id": "e", "user.id": "u"}},
                  {"attrs": {"session.id": "s", "langsmith.metadata.thread_id": "t2", "user.id": "u2"}})
    group = batch.sessions["s"]
    assert (group.thread_id, group.user_id) == ("t1", "u")


@pytest.mark.parametrize("bad", ["x" * 300, "a\x00b", "tab\there", "   "])
def test_unusable_ids_are_not_grouped_by_and_are_counted(bad):
    batch = build({"attrs": {"session.id": bad}})
    assert not batch.sessions and T1 in batch.orphans and batch.invalid_ids == 1


def test_spans_without_a_session_join_their_trace_in_the_same_request():
    batch = build({"attrs": {}}, {"attrs": {"session.id": "s"}}, {"trace": T2})
    assert batch.join_local() == 1
    assert batch.sessions["s"].span_count == 2 and list(batch.orphans) == [T2]


def test_labels_metadata_and_flags():
    batch = build(
        {"name": "agent", "attrs": {"session.id": "s", "gen_ai.agent.name": "router\x07",
                                    "session.metadata.plan": "pro", "session.metadata.bad\x01key": "v\x02"}},
        {"parent": bytes([1]) * 8, "error": True, "events": ["session.end"],
         "attrs": {"session.id": "s", "gen_ai.tool.name": "search", "gen_ai.request.model": "gpt-4o"}},
    )
    group = batch.sessions["s"]
    assert group.labels == {"s:svc", "a:router\ufffd", "t:search", "m:gpt-4o"}
    assert group.metadata == {"plan": "pro", "bad\ufffdkey": "v\ufffd"}
    root, child = group.spans
    assert root.flags & SpanFlags.ROOT and root.root_name == "agent"
    assert child.flags & SpanFlags.ERROR and not child.flags & SpanFlags.ROOT and group.ended


def test_an_all_zero_parent_is_a_root():
    (span,) = build({"parent": bytes(8), "attrs": {"session.id": "s"}}).sessions["s"].spans
    assert span.flags & SpanFlags.ROOT and span.root_name == "op 0"


def test_zero_or_wrong_length_ids_refuse_the_span_alone():
    batch = build({"trace": bytes(16), "attrs": {"session.id": "s"}}, {"id": bytes(8)}, {"attrs": {"session.id": "s"}})
    assert batch.rejected == 2 and batch.sessions["s"].span_count == 1 and len(batch.errors) == 2


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf, 1e30, float(2**63), -5, "NaN", "1e400"])
def test_a_bad_token_count_is_dropped_from_its_span_only(value):
    batch = build({"attrs": {"session.id": "s", "gen_ai.usage.input_tokens": value,
                             "gen_ai.usage.output_tokens": 7}})
    (span,) = batch.sessions["s"].spans
    assert (span.input_tokens, span.output_tokens) == (0, 7)
    assert batch.invalid_values == 1 and "token count" in batch.errors[0]


@pytest.mark.parametrize("value", [math.nan, math.inf, -1.0, 1e12])
def test_a_bad_cost_is_dropped_and_estimated_instead(value):
    batch = build({"attrs": {"session.id": "s", "gen_ai.usage.cost": value, "gen_ai.request.model": "gpt-4o",
                             "gen_ai.usage.input_tokens": 1_000_000}})
    (span,) = batch.sessions["s"].spans
    assert math.isclose(span.cost_usd, 2.5) and span.flags & SpanFlags.COST_ESTIMATED and batch.invalid_values == 1


def test_times_past_9999_are_clamped():
    (span,) = build({"start": 2**64 - 1, "end": 2**64 - 1, "attrs": {"session.id": "s"}}).sessions["s"].spans
    assert span.start_us == span.end_us == MAX_TIME_US


def test_cached_tokens_are_read_and_priced_at_the_cache_rate():
    (span,) = build({"attrs": {"session.id": "s", "gen_ai.request.model": "gpt-4o",
                               "gen_ai.usage.input_tokens": 1553, "gen_ai.usage.output_tokens": 28,
                               "gen_ai.usage.cache_read.input_tokens": 1408}}).sessions["s"].spans
    assert span.cache_read_tokens == 1408
    assert math.isclose(span.cost_usd, 0.0024025, rel_tol=1e-9)


@pytest.mark.parametrize("attrs", [{"gen_ai.operation.name": "invoke_agent"}, {"openinference.span.kind": "AGENT"},
                                   {"openinference.span.kind": "CHAIN"}, {"traceloop.span.kind": "workflow"}])
def test_agent_and_chain_spans_with_usage_are_aggregates(attrs):
    batch = build({"attrs": {"session.id": "s", "gen_ai.usage.input_tokens": 56, **attrs}},
                  {"parent": bytes([1]) * 8, "attrs": {"session.id": "s", "gen_ai.operation.name": "chat",
                                                       "gen_ai.usage.input_tokens": 56}})
    agent, call = batch.sessions["s"].spans
    assert agent.flags & SpanFlags.AGGREGATE and not call.flags & SpanFlags.AGGREGATE
    write = batch.sessions["s"].to_write("s")
    assert dict(write.counters)["in"] == 56 and not write.aggregates and len(write.markers) == 8


def test_an_agent_only_trace_counts_its_largest_aggregate():
    batch = build({"attrs": {"session.id": "s", "gen_ai.operation.name": "invoke_agent",
                             "gen_ai.usage.input_tokens": 56, "gen_ai.usage.output_tokens": 5}},
                  {"parent": bytes([1]) * 8, "attrs": {"session.id": "s", "gen_ai.operation.name": "invoke_agent",
                                                       "gen_ai.usage.input_tokens": 30}})
    write = batch.sessions["s"].to_write("s")
    assert dict(write.counters)["in"] == 0 and not write.markers
    ((_marker, tin, tout, _cost),) = write.aggregates
    assert (tin, tout) == (56, 5)


def test_a_span_repeated_within_a_request_counts_once():
    spec = {"id": bytes([9]) * 8, "attrs": {"session.id": "s", "gen_ai.usage.input_tokens": 3}}
    write = build(spec, spec).sessions["s"].to_write("s")
    assert write.span_count == 1 and dict(write.counters)["in"] == 3


def test_services_and_operations_are_collected_for_the_jaeger_index():
    batch = build({"name": "chat", "kind": Span.SPAN_KIND_CLIENT, "attrs": {"session.id": "s"}}, service="bot")
    assert batch.operations == {"bot": {(Span.SPAN_KIND_CLIENT, "chat")}}
