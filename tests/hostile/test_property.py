"""Property: whatever OTLP request arrives, the receiver never answers 5xx, and the store and
every lookup stay readable.

Hypothesis builds requests with arbitrary attribute values and types (any unicode text,
int64 edges, NaN and infinities, bytes, nested arrays and kvlists) under the keys the
receiver reads (ids, tokens, cost, model, agent, tool, metadata...) and under arbitrary keys,
arbitrary trace / span / parent ids (wrong lengths and all-zero included), times over the
whole uint64 range, odd span kinds, status codes and events, and sends each over the real
OTLP/HTTP receiver as protobuf or JSON, into an emptied Redis (so an example's verdict does
not depend on the ones before it). Bounded: 60 examples, derandomized (the same ones on every
run), no example database on disk, no shrinking (Hypothesis gives shrinking up to 5 minutes):
a failure shows the example as generated.
"""

from __future__ import annotations

import math

import redis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from otel_sessions.exporter.otlp_json import message_to_json
from tests.hostile.support import (
    JSON,
    PROTOBUF,
    Problems,
    get_json,
    lookups_problems,
    post,
    quote,
    set_value,
)

READ_KEYS = (
    "session.id", "gen_ai.conversation.id", "user.id", "session.name", "session.previous_id", "session.escalated",
    "gen_ai.usage.input_tokens", "gen_ai.usage.output_tokens", "gen_ai.usage.cost", "llm.cost.total",
    "gen_ai.request.model", "gen_ai.response.model", "gen_ai.agent.name", "gen_ai.tool.name", "langfuse.session.id",
    "session.metadata.tier", "service.name",
)
EDGE_INTS = (0, 1, -1, 2 ** 31, 2 ** 53 + 1, 2 ** 63 - 1, -(2 ** 63))
EDGE_TIMES = (0, 1, 2 ** 63 - 1, 2 ** 63, 2 ** 64 - 1, 1_700_000_000_000_000_000)

texts = st.text(max_size=40) | st.sampled_from(("", "\x00", "sess-a", "sess-b", "NaN", "-1", "1e309", " " * 300))
scalars = (
    texts
    | st.integers(-(2 ** 63), 2 ** 63 - 1) | st.sampled_from(EDGE_INTS)
    | st.floats(allow_nan=True, allow_infinity=True) | st.sampled_from((math.nan, math.inf, -math.inf, 1e30))
    | st.booleans() | st.binary(max_size=16)
    | st.sampled_from((math.nan, math.inf, -math.inf, 1e30, -5.0, 2 ** 63 - 1, -(2 ** 63), -5, "NaN", "inf",
                       "-Infinity", "1e30", str(2 ** 63), "-5"))
)
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=3)
                      | st.dictionaries(st.text(max_size=8), inner, max_size=3), max_leaves=6)
other_keys = st.text(max_size=20) | st.text(max_size=12).map("session.metadata.".__add__)
SESSIONS = ("sess-p1", "sess-p2", "sess-p3")


@st.composite
def span_attributes(draw) -> dict:
    """Mostly a session id from a small pool (so spans group and sessions accumulate), the
    keys the receiver reads with any values, and a few arbitrary keys."""
    found = {}
    if draw(st.integers(0, 9)) < 8:
        found["session.id"] = draw(st.sampled_from(SESSIONS)) if draw(st.integers(0, 3)) else draw(values)
    found.update(draw(st.dictionaries(st.sampled_from(READ_KEYS), values, max_size=5)))
    found.update(draw(st.dictionaries(other_keys, values, max_size=2)))
    return found


@st.composite
def ident(draw, size: int) -> bytes:
    """Mostly a valid id of ``size`` bytes; else empty, all zero, too long or of any length."""
    if draw(st.integers(0, 9)) < 8:
        return draw(st.binary(min_size=size, max_size=size).filter(any))
    return draw(st.sampled_from((bytes(size), b"", b"\x01" * (size * 2))) | st.binary(max_size=size + 4))


attributes = st.dictionaries(st.sampled_from(READ_KEYS) | other_keys, values, max_size=5)
trace_ids = ident(16)
span_ids = ident(8)
times = st.sampled_from(EDGE_TIMES) | st.integers(0, 2 ** 64 - 1)

spans = st.fixed_dictionaries({
    "trace_id": trace_ids, "span_id": span_ids, "parent_span_id": st.sampled_from((b"", bytes(8))) | span_ids,
    "name": texts, "kind": st.integers(-3, 9), "start": times, "end": times, "attributes": span_attributes(),
    "status": st.integers(-2, 5), "events": st.lists(st.sampled_from(("exception", "session.end")) | texts, max_size=2),
})
requests = st.lists(st.fixed_dictionaries({"resource": attributes, "spans": st.lists(spans, min_size=1, max_size=4)}),
                    min_size=1, max_size=3)


def _build(resources: list[dict]) -> ExportTraceServiceRequest:
    request = ExportTraceServiceRequest()
    for resource in resources:
        rs = request.resource_spans.add()
        for key, value in resource["resource"].items():
            kv = rs.resource.attributes.add()
            kv.key = key
            set_value(kv.value, value)
        scope = rs.scope_spans.add()
        for spec in resource["spans"]:
            span = scope.spans.add()
            span.trace_id, span.span_id, span.parent_span_id = spec["trace_id"], spec["span_id"], spec["parent_span_id"]
            span.name, span.kind = spec["name"], spec["kind"]
            span.start_time_unix_nano, span.end_time_unix_nano = spec["start"], spec["end"]
            span.status.code = spec["status"]
            for name in spec["events"]:
                span.events.add(name=name, time_unix_nano=spec["start"])
            for key, value in spec["attributes"].items():
                kv = span.attributes.add()
                kv.key = key
                set_value(kv.value, value)
    return request


def _named_sessions(request: ExportTraceServiceRequest) -> set[str]:
    return {kv.value.string_value for rs in request.resource_spans for ss in rs.scope_spans for span in ss.spans
            for kv in span.attributes if kv.key == "session.id" and kv.value.string_value}


def _trace_ids(request: ExportTraceServiceRequest) -> list[str]:
    return sorted({span.trace_id.hex() for rs in request.resource_spans for ss in rs.scope_spans
                   for span in ss.spans if len(span.trace_id) == 16 and any(span.trace_id)})


def test_any_request_gets_no_5xx_and_lookups_stay_readable(service, redis_url):
    client = redis.Redis.from_url(redis_url)

    @settings(max_examples=60, deadline=None, derandomize=True, database=None,
              phases=(Phase.explicit, Phase.generate),
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                     HealthCheck.function_scoped_fixture])
    @given(resources=requests, as_json=st.booleans())
    def property_holds(resources, as_json):
        client.flushall()
        request = _build(resources)
        body, content_type = (message_to_json(request), JSON) if as_json else (request.SerializeToString(), PROTOBUF)
        outcome = post(service.http_url, body, content_type, transport="http-json" if as_json else "http-proto")
        assert outcome.status in (200, 400), str(outcome)
        problems = Problems()
        listed = get_json(problems, service.http_url, "/v1/sessions?limit=50&offset=0")
        get_json(problems, service.http_url, "/v1/sessions?limit=500&sort_by=cost")
        for sid in _named_sessions(request):
            get_json(problems, service.http_url, f"/v1/sessions/{quote(sid)}", expect=(200, 404))
            get_json(problems, service.http_url, f"/api/sessions/{quote(sid)}/trace", expect=(200, 404))
        for trace_id in _trace_ids(request)[:3]:
            get_json(problems, service.http_url, f"/api/traces/{trace_id}", expect=(200, 404))
        for summary in (listed or {}).get("data", [])[:5]:
            get_json(problems, service.http_url, f"/v1/sessions/{quote(summary['id'])}")
            get_json(problems, service.http_url, f"/v1/sessions/{quote(summary['id'])}/spans")
        get_json(problems, service.http_url, "/api/services")
        assert not problems, "\n".join(problems)

    try:
        property_holds()
    finally:
        client.close()
    problems = lookups_problems(service, max_traces=5)
    assert not problems, "\n".join(problems)
