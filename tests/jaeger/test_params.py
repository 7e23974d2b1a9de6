"""Query parameters of ``GET /api/traces`` as Grafana's Jaeger data source and Jaeger UI send
them, Go durations and trace ids; every refused parameter is a ``BadQuery`` (HTTP 400)."""

from __future__ import annotations

import time

import pytest
from yarl import URL

from otel_sessions.exporter.errors import BadRequest, classify
from otel_sessions.exporter.jaeger.params import (
    DEFAULT_LIMIT,
    MAX_LIMIT,
    BadQuery,
    TraceQuery,
    parse_go_duration,
    parse_trace_id,
)


def _parse(query: str) -> TraceQuery:
    """``TraceQuery.parse`` on the query string as aiohttp's ``request.query`` gives it."""
    return TraceQuery.parse(URL(f"/api/traces?{query}").query)


# --- TraceQuery.parse ------------------------------------------------------------------------
def test_grafana_search_query():
    # datasource.ts: picked fields, tags converted from logfmt to JSON, the time range in µs,
    # lookback=custom
    q = _parse("service=checkout&operation=POST%20%2Fpay"
               "&tags=%7B%22session.id%22%3A%22s-1%22%2C%22http.status_code%22%3A%22500%22%7D"
               "&minDuration=100ms&maxDuration=1.2s&limit=20"
               "&start=1700000000000000&end=1700000360000000&lookback=custom")
    assert q == TraceQuery(service="checkout", operation="POST /pay",
                           tags={"session.id": "s-1", "http.status_code": "500"},
                           start_us=1_700_000_000_000_000, end_us=1_700_000_360_000_000, limit=20,
                           min_duration_us=100_000, max_duration_us=1_200_000, trace_ids=[])


def test_jaeger_ui_query_with_blank_durations():
    # Jaeger UI sends the duration fields even when empty, some without "="
    q = _parse("end=1700000360000000&limit=20&lookback=1h&maxDuration&minDuration="
               "&service=frontend&start=1700000000000000&tags=%7B%22error%22%3A%22true%22%7D")
    assert q.service == "frontend" and q.operation is None
    assert q.tags == {"error": "true"}
    assert q.min_duration_us is None and q.max_duration_us is None
    # start is given, so lookback does not replace it
    assert q.start_us == 1_700_000_000_000_000 and q.end_us == 1_700_000_360_000_000
    assert q.limit == 20


def test_empty_query_takes_the_defaults():
    q = _parse("")
    assert q == TraceQuery()
    assert q.limit == DEFAULT_LIMIT == 100
    assert q.service is None and q.operation is None and q.tags == {}
    assert q.start_us is None and q.end_us is None and q.trace_ids == []
    # empty values count as absent
    assert _parse("service=&operation=&tags=&start=&end=&limit=&lookback=") == TraceQuery()


def test_repeated_tags_and_tag_parameters_merge():
    q = _parse("tags=%7B%22a%22%3A%221%22%7D&tags=%7B%22b%22%3A%222%22%7D"
               "&tag=user.id:u-7&tag=url:http://x:8080/p&tag=empty:")
    # a tag value may hold colons: only the first one separates key and value
    assert q.tags == {"a": "1", "b": "2", "user.id": "u-7", "url": "http://x:8080/p", "empty": ""}


def test_tags_values_are_compared_as_text():
    q = _parse("tags=" + '{"flag": true, "off": false, "n": 5, "x": 1.5}')
    assert q.tags == {"flag": "true", "off": "false", "n": "5", "x": "1.5"}


def test_tag_after_tags_wins_for_the_same_key():
    q = _parse('tags={"k":"from-json"}&tag=k:from-tag')
    assert q.tags == {"k": "from-tag"}


def test_lookback_bounds_start_from_end():
    q = _parse("end=10000000000&lookback=1h")
    assert q.start_us == 10_000_000_000 - 3_600_000_000
    assert q.end_us == 10_000_000_000


def test_lookback_without_end_counts_from_now():
    before = int(time.time() * 1e6)
    q = _parse("lookback=2m30s")
    after = int(time.time() * 1e6)
    assert q.end_us is None
    assert before - 150_000_000 <= q.start_us <= after - 150_000_000


def test_lookback_custom_is_ignored():
    assert _parse("lookback=custom").start_us is None


@pytest.mark.parametrize(("raw", "limit"), [("20", 20), ("1", 1), ("0", DEFAULT_LIMIT), ("-5", DEFAULT_LIMIT),
                                            ("1500", 1500), ("99999", MAX_LIMIT)])
def test_limit(raw, limit):
    assert _parse(f"limit={raw}").limit == limit


def test_durations_are_go_durations_in_microseconds():
    q = _parse("minDuration=1m30s&maxDuration=2h")
    assert q.min_duration_us == 90_000_000
    assert q.max_duration_us == 7_200_000_000


def test_equal_min_and_max_duration_are_accepted():
    q = _parse("minDuration=1s&maxDuration=1000ms")
    assert q.min_duration_us == q.max_duration_us == 1_000_000


def test_trace_ids_repeat_and_are_padded():
    q = _parse("traceID=0af7651916cd43dd8448eb211c80319c&traceID=1F&traceID=%200a%20")
    assert q.trace_ids == [bytes.fromhex("0af7651916cd43dd8448eb211c80319c"),
                           bytes(15) + b"\x1f", bytes(15) + b"\x0a"]


def test_operation_with_trace_ids_still_needs_service():
    with pytest.raises(BadQuery, match="'service' is required"):
        _parse("operation=op&traceID=1")


@pytest.mark.parametrize(("query", "message"), [
    ("tags=%7Bnot-json", "malformed 'tags' parameter, cannot unmarshal JSON"),
    ("tags=%5B%22a%22%5D", "malformed 'tags' parameter: expecting a JSON object"),
    ("tags=%22text%22", "malformed 'tags' parameter: expecting a JSON object"),
    ("tag=no-colon", "malformed 'tag' parameter, expecting key:value, got 'no-colon'"),
    ("start=yesterday", "cannot parse 'start' 'yesterday': expecting microseconds since the epoch"),
    ("end=1.5e15", "cannot parse 'end' '1.5e15': expecting microseconds since the epoch"),
    ("lookback=1d", "cannot parse duration '1d'"),
    ("limit=ten", "cannot parse 'limit' 'ten'"),
    ("limit=2.5", "cannot parse 'limit' '2.5'"),
    ("minDuration=100", "cannot parse duration '100'"),
    ("maxDuration=fast", "cannot parse duration 'fast'"),
    ("minDuration=2s&maxDuration=1s", "'maxDuration' should be greater than 'minDuration'"),
    ("operation=POST", "parameter 'service' is required when 'operation' is given"),
    ("traceID=xyz", "cannot parse traceID 'xyz': expecting up to 32 hex digits"),
    ("traceID=" + "1" * 33, "cannot parse traceID"),
])
def test_refused_parameters_are_bad_queries(query, message):
    with pytest.raises(BadQuery) as info:
        _parse(query)
    assert message in str(info.value)
    assert isinstance(info.value, BadRequest)
    assert classify(info.value).http_status == 400


# --- parse_go_duration -----------------------------------------------------------------------
@pytest.mark.parametrize(("text", "us"), [
    ("1.2s", 1_200_000),
    ("100ms", 100_000),
    ("1m30s", 90_000_000),
    ("1h", 3_600_000_000),
    ("2h45m", 9_900_000_000),
    ("1h0m0.5s", 3_600_500_000),
    ("500us", 500),
    ("500µs", 500),  # U+00B5 micro sign
    ("500μs", 500),  # U+03BC Greek mu
    ("1500ns", 1.5),
    ("0s", 0),
    (".5s", 500_000),
    ("1.s", 1_000_000),
    (" 3ms ", 3_000),
])
def test_go_durations(text, us):
    assert parse_go_duration(text) == pytest.approx(us)


@pytest.mark.parametrize("text", ["", "   ", "1", "s", "1d", "1S", "1 s", "-1s", "1s2", "1.2.3s", "ms1", "1s ms"])
def test_bad_go_durations(text):
    with pytest.raises(BadQuery, match="cannot parse duration .*use Go durations"):
        parse_go_duration(text)


# --- parse_trace_id --------------------------------------------------------------------------
def test_full_trace_id():
    hex_id = "4bf92f3577b34da6a3ce929d0e0e4736"
    assert parse_trace_id(hex_id) == bytes.fromhex(hex_id)
    assert parse_trace_id(hex_id.upper()) == bytes.fromhex(hex_id)


@pytest.mark.parametrize(("text", "padded"), [
    ("a3ce929d0e0e4736", "0000000000000000a3ce929d0e0e4736"),  # 64-bit Jaeger id
    ("abc", "00000000000000000000000000000abc"),  # leading zeros dropped, odd length
    ("0", "0" * 32),
])
def test_short_trace_ids_are_left_padded(text, padded):
    assert parse_trace_id(text) == bytes.fromhex(padded)
    assert len(parse_trace_id(text)) == 16


@pytest.mark.parametrize("text", ["", " ", "xyz", "0x1f", "4bf92f35-77b3", "g" * 32, "1" * 33])
def test_bad_trace_ids(text):
    with pytest.raises(BadQuery, match="cannot parse traceID .*expecting up to 32 hex digits"):
        parse_trace_id(text)
