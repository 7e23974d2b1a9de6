"""Hostile input over every transport: one request of nine good sessions plus ONE bad span
(or one hostile encoding), through the real service.

What is right, for every case: no 5xx ever; a body that does not parse is refused whole
(400 / ``INVALID_ARGUMENT``); otherwise 200 / ``OK``, the nine good sessions stored with their
exact spans, traces, tokens and cost, and the bad value costs at most that one value or that
one span. Afterwards every lookup still answers, with valid JSON (no bare ``NaN`` /
``Infinity``) or protobuf: the REST list (the web page's call too), detail and spans, the gRPC
SessionService, the Jaeger-compatible API.
"""

from __future__ import annotations

import gzip
import math
import zlib
from collections.abc import Callable

import grpc
import pytest

from otel_sessions.exporter.ingest.content_encoding import zstd
from otel_sessions.exporter.otlp_json import message_to_json
from tests.hostile.support import (
    GOOD_SESSIONS,
    JSON,
    PROTOBUF,
    TRANSPORTS,
    Hostile,
    Outcome,
    add_attributes,
    bad_session,
    export_grpc,
    good_problems,
    ids,
    lookups_problems,
    post,
    send,
    set_value,
)

INF = float("inf")
HOSTILE_TEXT = "bad\x00nul\x01\x07\x1b[31m\x7f\u0085\u2028\ud7ff\ufffe\U0010ffff end"
TOKENS_IN, TOKENS_OUT, COST = "gen_ai.usage.input_tokens", "gen_ai.usage.output_tokens", "gen_ai.usage.cost"


def _finish(service, hostile: Hostile, outcome: Outcome, extra: Callable | None = None,
            expect_status: int = 200) -> None:
    """The common verdict: the status, the good sessions exact, every lookup valid, and the
    case's own check; every problem is listed in one failure."""
    problems = []
    if outcome.status != expect_status:
        problems.append(f"status {outcome} (expected {expect_status})")
    if expect_status == 200:
        problems += good_problems(service, hostile)
    if extra is not None:
        try:
            extra(service, hostile)
        except AssertionError as failure:
            problems.append(f"case check: {failure}")
    problems += lookups_problems(service)
    assert not problems, "\n".join(problems)


def _bad_is_at_most_one_span(service, hostile: Hostile) -> dict | None:
    bad = bad_session(service, hostile)
    if bad is not None:
        assert bad["span_count"] == 1, f"bad session holds {bad['span_count']} spans"
    return bad


# --- numbers ---------------------------------------------------------------------------------------

NUMBERS = {
    "double-nan": math.nan, "double-inf": INF, "double-neg-inf": -INF, "double-1e30": 1e30,
    "double-2p63": 2.0 ** 63, "double-neg": -5.0, "double-neg-1e30": -1e30,
    "int-max": 2 ** 63 - 1, "int-min": -(2 ** 63), "int-neg": -5,
    "string-nan": "NaN", "string-inf": "inf", "string-neg-inf": "-Infinity", "string-1e30": "1e30",
    "string-2p63": str(2 ** 63), "string-neg": "-5",
}


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("value", NUMBERS.values(), ids=NUMBERS.keys())
@pytest.mark.parametrize("key", (TOKENS_IN, TOKENS_OUT, COST), ids=("input_tokens", "output_tokens", "cost"))
def test_a_hostile_number(service, key, value, transport):
    hostile = Hostile("num")
    hostile.bad_span(attributes={"gen_ai.request.model": "gpt-4o", TOKENS_IN: 7, TOKENS_OUT: 3, key: value})

    def check(service, hostile):
        bad = _bad_is_at_most_one_span(service, hostile)
        if bad is None:
            return
        for name in ("input_tokens", "output_tokens", "total_tokens"):
            assert isinstance(bad[name], int) and 0 <= bad[name] < 2 ** 63, f"{name} = {bad[name]!r}"
        assert isinstance(bad["cost_usd"], (int, float)) and math.isfinite(bad["cost_usd"]), \
            f"cost_usd = {bad['cost_usd']!r} (null: stored as not finite)"
        if key != TOKENS_IN:
            assert bad["input_tokens"] == 7, "a bad value elsewhere cost the good input_tokens"
        if key != TOKENS_OUT:
            assert bad["output_tokens"] == 3, "a bad value elsewhere cost the good output_tokens"

    _finish(service, hostile, send(service, hostile.request, transport), check)


# --- labels --------------------------------------------------------------------------------------

LABELS = {
    "model": {"span": {"gen_ai.request.model": HOSTILE_TEXT}},
    "service": {"resource": {"service.name": HOSTILE_TEXT}},
    "agent": {"span": {"gen_ai.agent.name": HOSTILE_TEXT}},
    "tool": {"span": {"gen_ai.tool.name": HOSTILE_TEXT}},
    "session-id": {"session": HOSTILE_TEXT},
    "user-id": {"span": {"user.id": HOSTILE_TEXT}},
    "thread-id": {"span": {"gen_ai.conversation.id": HOSTILE_TEXT}},
    "session-name": {"span": {"session.name": HOSTILE_TEXT}},
    "metadata-key": {"span": {"session.metadata." + HOSTILE_TEXT: "v"}},
    "metadata-value": {"span": {"session.metadata.tier": HOSTILE_TEXT}},
    "span-name": {"name": HOSTILE_TEXT},
    "attribute-key": {"span": {HOSTILE_TEXT: HOSTILE_TEXT}},
}


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("label", LABELS.values(), ids=LABELS.keys())
def test_control_characters_in_a_label(service, label, transport):
    hostile = Hostile("label")
    resource = {"service.name": "bad-svc", **label.get("resource", {})}
    hostile.bad_span(name=label.get("name", "bad"), attributes=label.get("span"), resource=resource,
                     session=label.get("session", "default"))
    _finish(service, hostile, send(service, hostile.request, transport), _bad_is_at_most_one_span)


@pytest.mark.parametrize("transport", ("http-proto", "grpc"))
def test_invalid_utf8_in_a_string_does_not_parse(service, transport):
    """Protobuf strings are UTF-8: a span name that is not is a body that does not parse."""
    hostile = Hostile("utf8")
    hostile.bad_span(name="\u00ffPLACEHOLDER")
    body = hostile.request.SerializeToString().replace(b"\xc3\xbfPLACEHOLDER", b"\xff\xfePLACEHOLDER")
    outcome = (post(service.http_url, body, PROTOBUF, transport=transport) if transport == "http-proto"
               else export_grpc(service.grpc_endpoint, body))
    _finish(service, hostile, outcome, expect_status=400)


# --- times and ids -------------------------------------------------------------------------------

MAX64 = 2 ** 64 - 1
TIMES = {
    "start-zero": (0, None), "end-zero": (None, 0), "both-zero": (0, 0),
    "start-max": (MAX64, None), "end-max": (None, MAX64), "both-max": (MAX64, MAX64),
    "end-before-start": (None, -1),
}


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("times", TIMES.values(), ids=TIMES.keys())
def test_hostile_times(service, times, transport):
    hostile = Hostile("time")
    span = hostile.bad_span()
    start, end = times
    if start is not None:
        span.start_time_unix_nano = start
    if end == -1:
        span.end_time_unix_nano = span.start_time_unix_nano - 1_000_000_000
    elif end is not None:
        span.end_time_unix_nano = end

    def check(service, hostile):
        bad = _bad_is_at_most_one_span(service, hostile)
        if bad is not None:
            assert bad["duration_ms"] >= 0, bad["duration_ms"]

    _finish(service, hostile, send(service, hostile.request, transport), check)


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_an_all_zero_parent_span_id_is_a_root(service, transport):
    """OTLP: an empty parent span id marks a root, and an all-zero id is the empty id."""
    hostile = Hostile("parent")
    span = hostile.bad_span(name="zero-parent")
    span.parent_span_id = bytes(8)

    def check(service, hostile):
        from tests.hostile.support import Problems, get_json, quote

        problems = Problems()
        bad = get_json(problems, service.http_url, f"/v1/sessions/{quote(hostile.bad_session)}")
        assert bad is not None, problems
        assert bad["span_count"] == 1
        assert [t["root_name"] for t in bad["traces"]] == ["zero-parent"], bad["traces"]

    _finish(service, hostile, send(service, hostile.request, transport), check)


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_seventy_thousand_traces_in_one_session(private_service, transport):
    service = private_service
    hostile = Hostile("many")
    resource_spans = hostile.request.resource_spans.add()
    add_attributes(resource_spans.resource, {"service.name": "many-svc"})
    scope = resource_spans.scope_spans.add()
    session = hostile.bad_session
    for n in range(70_000):
        span = scope.spans.add()
        span.trace_id, span.span_id = ids(session, n)
        span.name = "t"
        span.start_time_unix_nano = hostile.now_ns + n
        span.end_time_unix_nano = hostile.now_ns + n + 1000
        kv = span.attributes.add()
        kv.key, kv.value.string_value = "session.id", session

    def check(service, hostile):
        bad = bad_session(service, hostile)
        assert bad is not None
        assert (bad["span_count"], bad["trace_count"]) == (70_000, 70_000)

    _finish(service, hostile, send(service, hostile.request, transport), check)


# --- nesting ---------------------------------------------------------------------------------------

def _nested(kind: str, depth: int):
    value = "leaf"
    for _ in range(depth):
        value = [value] if kind == "array" else {"k": value}
    return value


def _nested_json(kind: str, depth: int) -> bytes:
    """An OTLP/JSON AnyValue nested ``depth`` times (written by hand: the encoders recurse)."""
    opening = b'{"arrayValue":{"values":[' if kind == "array" else b'{"kvlistValue":{"values":[{"key":"k","value":'
    closing = b"]}}" if kind == "array" else b"}]}}"
    return opening * depth + b'{"stringValue":"leaf"}' + closing * depth


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("kind", ("array", "kvlist"))
def test_nesting_deeper_than_protobuf_allows_does_not_parse(service, kind, transport):
    hostile = Hostile("deep")
    span = hostile.bad_span()
    kv = span.attributes.add()
    kv.key = "deep"
    if transport == "http-json":
        kv.value.string_value = "PLACEHOLDER"
        body = message_to_json(hostile.request).replace(b'{"stringValue":"PLACEHOLDER"}', _nested_json(kind, 150))
        outcome = post(service.http_url, body, JSON, transport=transport)
    else:
        set_value(kv.value, _nested(kind, 150))
        outcome = send(service, hostile.request, transport)
    _finish(service, hostile, outcome, expect_status=400)


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("kind", ("array", "kvlist"))
def test_nesting_within_the_limit_is_stored(service, kind, transport):
    hostile = Hostile("nested")
    span = hostile.bad_span()
    set_value(span.attributes.add().value, _nested(kind, 20))
    span.attributes[-1].key = "nested"
    _finish(service, hostile, send(service, hostile.request, transport), _bad_is_at_most_one_span)


def test_json_nested_past_the_parsers_recursion_limit(service):
    hostile = Hostile("brackets")
    for body in (b"[" * 100_000, b'{"resourceSpans":' + b"[" * 100_000,
                 b'{"resourceSpans":[{"scopeSpans":[{"spans":[{"attributes":[{"key":"a","value":'
                 + b'{"arrayValue":{"values":[' * 5_000 + b"]}}]}]}]}]}"):
        _finish(service, hostile, post(service.http_url, body, JSON, transport="http-json"), expect_status=400)


# --- encodings -------------------------------------------------------------------------------------

def _halves(hostile: Hostile, transport: str) -> tuple[bytes, bytes]:
    """Two pieces whose concatenation is the request: two requests of its own for protobuf
    (concatenated protobuf messages merge), the JSON text cut in the middle for JSON."""
    if transport == "http-json":
        body = message_to_json(hostile.request)
        return body[: len(body) // 2], body[len(body) // 2:]
    first, second = type(hostile.request)(), type(hostile.request)()
    first.CopyFrom(hostile.request)
    second.CopyFrom(hostile.request)
    scope_a = first.resource_spans[0].scope_spans[0].spans
    scope_b = second.resource_spans[0].scope_spans[0].spans
    cut = len(scope_a) // 2
    del scope_a[cut:]
    del scope_b[:cut]
    return first.SerializeToString(), second.SerializeToString()


@pytest.mark.parametrize("transport", ("http-proto", "http-json"))
def test_multi_member_gzip_stores_both_members(service, transport):
    hostile = Hostile("gzip2")
    a, b = _halves(hostile, transport)
    content_type = JSON if transport == "http-json" else PROTOBUF
    outcome = post(service.http_url, gzip.compress(a) + gzip.compress(b), content_type, "gzip", transport)
    _finish(service, hostile, outcome)


def _raw_deflate(data: bytes) -> bytes:
    compressor = zlib.compressobj(wbits=-15)
    return compressor.compress(data) + compressor.flush()


ENCODINGS = {
    "deflate-zlib": ("deflate", zlib.compress),
    "deflate-raw": ("deflate", _raw_deflate),
    "zstd": ("zstd", zstd.compress),
    "zstd-two-frames": ("zstd", lambda data: zstd.compress(data[:100]) + zstd.compress(data[100:])),
    "gzip-then-zstd": ("gzip, zstd", lambda data: zstd.compress(gzip.compress(data))),
}


@pytest.mark.parametrize("transport", ("http-proto", "http-json"))
@pytest.mark.parametrize("encoding", ENCODINGS.values(), ids=ENCODINGS.keys())
def test_compressed_bodies(service, encoding, transport):
    hostile = Hostile("coded")
    hostile.bad_span()
    name, compress = encoding
    content_type = JSON if transport == "http-json" else PROTOBUF
    body = message_to_json(hostile.request) if transport == "http-json" else hostile.request.SerializeToString()
    _finish(service, hostile, post(service.http_url, compress(body), content_type, name, transport),
            _bad_is_at_most_one_span)


def test_grpc_compressed_message(service):
    hostile = Hostile("grpcgz")
    hostile.bad_span()
    outcome = export_grpc(service.grpc_endpoint, hostile.request.SerializeToString(), grpc.Compression.Gzip)
    _finish(service, hostile, outcome, _bad_is_at_most_one_span)


def test_good_sessions_alone_are_all_stored(service):
    """The control: the nine good sessions and nothing else, over each transport in turn."""
    for transport in TRANSPORTS:
        hostile = Hostile(f"control-{transport}")
        _finish(service, hostile, send(service, hostile.request, transport))
    assert len(hostile.expected) == GOOD_SESSIONS
