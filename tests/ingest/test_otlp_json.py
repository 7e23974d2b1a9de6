"""OTLP/JSON reading: both field-name styles, hex ids, bounded nesting, whole-or-refused bodies."""

from __future__ import annotations

import base64
import json
import math

import pytest
from google.protobuf import json_format
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status, TracesData

from otel_sessions.exporter.otlp_json import MAX_DEPTH, OtlpJsonError, message_to_json, parse_traces_json

TRACE = "5b8efff798038103d269b633813fc60c"
SPAN = "eee19b7ec3c1b174"
PARENT = "00f067aa0ba902b7"  # 16 hex digits: 8 bytes (read as base64 it would be 12)
LINK_TRACE = "0af7651916cd43dd8448eb211c80319c"
LINK_SPAN = "b7ad6b7169203331"


def parse(data) -> ExportTraceServiceRequest:
    body = data if isinstance(data, bytes) else json.dumps(data).encode()
    return parse_traces_json(body, ExportTraceServiceRequest())


def wrap(span: dict, *, snake: bool = False) -> dict:
    if snake:
        return {"resource_spans": [{"scope_spans": [{"spans": [span]}]}]}
    return {"resourceSpans": [{"scopeSpans": [{"spans": [span]}]}]}


def only_span(request: ExportTraceServiceRequest) -> Span:
    (span,) = request.resource_spans[0].scope_spans[0].spans
    return span


def expected_request() -> ExportTraceServiceRequest:
    """Every field of a trace export request, set to a value that is not its default."""
    request = ExportTraceServiceRequest()
    rs = request.resource_spans.add(schema_url="https://opentelemetry.io/schemas/1.26.0")
    rs.resource.attributes.add(key="service.name").value.string_value = "checkout"
    rs.resource.dropped_attributes_count = 1
    ss = rs.scope_spans.add(schema_url="https://opentelemetry.io/schemas/1.25.0")
    ss.scope.name, ss.scope.version, ss.scope.dropped_attributes_count = "lib", "1.2", 2
    ss.scope.attributes.add(key="scope.attr").value.bool_value = True
    span = ss.spans.add(
        trace_id=bytes.fromhex(TRACE), span_id=bytes.fromhex(SPAN), parent_span_id=bytes.fromhex(PARENT),
        trace_state="vendor=1", flags=257, name="chat gpt-4o", kind=Span.SPAN_KIND_CLIENT,
        start_time_unix_nano=1_700_000_000_123_456_789, end_time_unix_nano=1_700_000_001_000_000_000,
        dropped_attributes_count=3, dropped_events_count=4, dropped_links_count=5,
        status=Status(code=Status.STATUS_CODE_ERROR, message="boom"))
    attributes = span.attributes
    attributes.add(key="s").value.string_value = "text"
    attributes.add(key="b").value.bool_value = False  # set, though false
    attributes.add(key="i").value.int_value = -9_007_199_254_740_993  # beyond a double's precision
    attributes.add(key="d").value.double_value = 0.25
    attributes.add(key="bytes").value.bytes_value = b"\x00\xffraw"
    array = attributes.add(key="arr").value.array_value
    array.values.add().string_value = "a"
    array.values.add().int_value = 2
    array.values.add().array_value.values.add().bool_value = True
    kvlist = attributes.add(key="kv").value.kvlist_value
    kvlist.values.add(key="inner").value.double_value = 1.5
    kvlist.values.add(key="nested").value.kvlist_value.values.add(key="deep").value.string_value = "x"
    event = span.events.add(time_unix_nano=1_700_000_000_500_000_000, name="exception", dropped_attributes_count=6)
    event.attributes.add(key="exception.message").value.string_value = "bad"
    link = span.links.add(trace_id=bytes.fromhex(LINK_TRACE), span_id=bytes.fromhex(LINK_SPAN),
                          trace_state="l=1", flags=1, dropped_attributes_count=7)
    link.attributes.add(key="link.kind").value.string_value = "follows"
    return request


def snake_case_body() -> dict:
    """``expected_request()`` as the proto field names spell it, written out by hand."""
    return {"resource_spans": [{
        "resource": {"attributes": [{"key": "service.name", "value": {"string_value": "checkout"}}],
                     "dropped_attributes_count": 1},
        "schema_url": "https://opentelemetry.io/schemas/1.26.0",
        "scope_spans": [{
            "scope": {"name": "lib", "version": "1.2", "dropped_attributes_count": 2,
                      "attributes": [{"key": "scope.attr", "value": {"bool_value": True}}]},
            "schema_url": "https://opentelemetry.io/schemas/1.25.0",
            "spans": [{
                "trace_id": TRACE, "span_id": SPAN, "parent_span_id": PARENT, "trace_state": "vendor=1",
                "flags": 257, "name": "chat gpt-4o", "kind": "SPAN_KIND_CLIENT",
                "start_time_unix_nano": "1700000000123456789", "end_time_unix_nano": 1700000001000000000,
                "attributes": [
                    {"key": "s", "value": {"string_value": "text"}},
                    {"key": "b", "value": {"bool_value": False}},
                    {"key": "i", "value": {"int_value": "-9007199254740993"}},
                    {"key": "d", "value": {"double_value": 0.25}},
                    {"key": "bytes", "value": {"bytes_value": "AP9yYXc="}},
                    {"key": "arr", "value": {"array_value": {"values": [
                        {"string_value": "a"}, {"int_value": 2},
                        {"array_value": {"values": [{"bool_value": True}]}}]}}},
                    {"key": "kv", "value": {"kvlist_value": {"values": [
                        {"key": "inner", "value": {"double_value": 1.5}},
                        {"key": "nested", "value": {"kvlist_value": {"values": [
                            {"key": "deep", "value": {"string_value": "x"}}]}}}]}}},
                ],
                "dropped_attributes_count": 3,
                "events": [{"time_unix_nano": "1700000000500000000", "name": "exception",
                            "attributes": [{"key": "exception.message", "value": {"string_value": "bad"}}],
                            "dropped_attributes_count": 6}],
                "dropped_events_count": 4,
                "links": [{"trace_id": LINK_TRACE, "span_id": LINK_SPAN, "trace_state": "l=1", "flags": 1,
                           "attributes": [{"key": "link.kind", "value": {"string_value": "follows"}}],
                           "dropped_attributes_count": 7}],
                "dropped_links_count": 5,
                "status": {"code": "STATUS_CODE_ERROR", "message": "boom"},
            }],
        }],
    }]}


def test_snake_case_field_names_read_every_field():
    request = parse(snake_case_body())
    assert request == expected_request()
    span = only_span(request)
    assert span.trace_id == bytes.fromhex(TRACE)
    assert span.parent_span_id == bytes.fromhex(PARENT) and len(span.parent_span_id) == 8
    assert span.links[0].trace_id == bytes.fromhex(LINK_TRACE) and span.links[0].span_id == bytes.fromhex(LINK_SPAN)
    assert span.attributes[2].value.int_value == -9_007_199_254_740_993


def test_camel_case_as_the_exporters_write_it():
    body = message_to_json(expected_request())
    assert b'"parentSpanId":"00f067aa0ba902b7"' in body
    assert parse(body) == expected_request()


def test_snake_case_as_protobuf_writes_it():
    data = json_format.MessageToDict(expected_request(), preserving_proto_field_name=True)
    span = data["resource_spans"][0]["scope_spans"][0]["spans"][0]
    for holder in (span, *span["links"]):
        for name in ("trace_id", "span_id", "parent_span_id"):
            if name in holder:  # json_format writes base64: OTLP/JSON wants hex
                holder[name] = base64.b64decode(holder[name]).hex()
    assert parse(data) == expected_request()


def test_the_two_styles_mix_across_objects():
    span = {"trace_id": TRACE, "spanId": SPAN, "parent_span_id": PARENT, "startTimeUnixNano": 5}
    request = parse({"resourceSpans": [{"scope_spans": [{"spans": [span]}]}]})
    got = only_span(request)
    assert (got.trace_id.hex(), got.span_id.hex(), got.parent_span_id.hex()) == (TRACE, SPAN, PARENT)
    assert got.start_time_unix_nano == 5


def test_traces_data():
    message = parse_traces_json(json.dumps(wrap({"span_id": SPAN}, snake=True)).encode(), TracesData())
    assert message.resource_spans[0].scope_spans[0].spans[0].span_id == bytes.fromhex(SPAN)


def test_upper_case_hex_ids():
    span = only_span(parse(wrap({"traceId": TRACE.upper(), "spanId": SPAN.upper(), "parentSpanId": PARENT.upper()})))
    assert (span.trace_id, span.span_id, span.parent_span_id) == (
        bytes.fromhex(TRACE), bytes.fromhex(SPAN), bytes.fromhex(PARENT))


def test_empty_ids_are_absent():
    span = only_span(parse(wrap({"traceId": TRACE, "spanId": SPAN, "parentSpanId": ""})))
    assert span.parent_span_id == b""


@pytest.mark.parametrize("field", ["traceId", "trace_id", "spanId", "span_id", "parentSpanId", "parent_span_id"])
@pytest.mark.parametrize("value", [
    "W47/95gDgQPSabYzgT/GDA==",  # the trace id in base64
    "7uGbfsPBsXQ=",  # the span id in base64
    "5b8efff798038103d269b633813fc60",  # odd length
    "5b 8e ff f7 98 03 81 03",  # spaces
    "zz", 12345, ["5b"], {"hex": SPAN},
])
def test_ids_that_are_not_hex_are_refused(field, value):
    with pytest.raises(OtlpJsonError) as caught:
        parse(wrap({field: value}))
    assert "resourceSpans[0].scopeSpans[0].spans[0]." in str(caught.value)


def test_link_ids_that_are_not_hex_are_refused():
    with pytest.raises(OtlpJsonError, match=r"spans\[0\]\.links\[1\]\.traceId"):
        parse(wrap({"links": [{"traceId": LINK_TRACE}, {"traceId": "W47/95gDgQPSabYzgT/GDA=="}]}))


def test_empty_any_values_arrays_and_kvlists():
    span = only_span(parse(wrap({"attributes": [
        {"key": "empty", "value": {}},
        {"key": "arr", "value": {"arrayValue": {}}},
        {"key": "kv", "value": {"kvlist_value": {}}},
        {"key": "arr2", "value": {"arrayValue": {"values": []}}},
    ]})))
    empty, arr, kv, arr2 = (a.value for a in span.attributes)
    assert span.attributes[0].HasField("value") and empty.WhichOneof("value") is None
    assert arr.WhichOneof("value") == "array_value" and len(arr.array_value.values) == 0
    assert kv.WhichOneof("value") == "kvlist_value" and len(kv.kvlist_value.values) == 0
    assert arr2.WhichOneof("value") == "array_value"


@pytest.mark.parametrize("value", [1700000000123456789, "1700000000123456789"])
def test_int64_as_number_or_string(value):
    span = only_span(parse(wrap({"startTimeUnixNano": value, "attributes": [
        {"key": "n", "value": {"intValue": value}}]})))
    assert span.start_time_unix_nano == 1_700_000_000_123_456_789
    assert span.attributes[0].value.int_value == 1_700_000_000_123_456_789


@pytest.mark.parametrize(("kind", "code"), [
    ("SPAN_KIND_SERVER", "STATUS_CODE_ERROR"), (2, 2), ("2", "2"), ("SPAN_KIND_UNSPECIFIED", "STATUS_CODE_UNSET")])
def test_enums_by_name_or_number(kind, code):
    span = only_span(parse(wrap({"kind": kind, "status": {"code": code}})))
    assert span.kind == (0 if kind == "SPAN_KIND_UNSPECIFIED" else Span.SPAN_KIND_SERVER)
    assert span.status.code == (0 if code == "STATUS_CODE_UNSET" else Status.STATUS_CODE_ERROR)


def test_enum_numbers_outside_the_names_are_kept():
    assert only_span(parse(wrap({"kind": 9}))).kind == 9


def test_unknown_enum_names_are_refused():
    with pytest.raises(OtlpJsonError, match="kind"):
        parse(wrap({"kind": "SPAN_KIND_SERVERLESS"}))


def test_unknown_fields_are_ignored_wherever_they_are():
    data = wrap({"spanId": SPAN, "futureField": {"deep": [[[1]]]}, "attributes": [
        {"key": "k", "value": {"stringValue": "v", "futureValue": 1}, "extra": None}]})
    data["resourceSpans"][0]["scopeSpans"][0]["unknownList"] = [{"x": 1}]
    data["somethingNew"] = "x" * 10
    span = only_span(parse(data))
    assert span.span_id == bytes.fromhex(SPAN) and span.attributes[0].value.string_value == "v"


def test_nulls_are_defaults():
    request = parse({"resourceSpans": None})
    assert len(request.resource_spans) == 0
    span = only_span(parse(wrap({"name": None, "traceId": None, "status": None, "attributes": None})))
    assert span == Span()


def test_doubles():
    span = only_span(parse(wrap({"attributes": [
        {"key": "a", "value": {"doubleValue": "NaN"}},
        {"key": "b", "value": {"doubleValue": "-Infinity"}},
        {"key": "c", "value": {"doubleValue": 3}},
        {"key": "d", "value": {"doubleValue": "2.5e3"}}]})))
    a, b, c, d = (x.value.double_value for x in span.attributes)
    assert math.isnan(a) and b == -math.inf and c == 3.0 and d == 2500.0


def test_bytes_values_are_base64_standard_or_url_safe_padded_or_not():
    span = only_span(parse(wrap({"attributes": [
        {"key": "a", "value": {"bytesValue": "AP9yYXc="}},
        {"key": "b", "value": {"bytesValue": "AP9yYXc"}},
        {"key": "c", "value": {"bytesValue": "-_8"}}]})))
    assert [x.value.bytes_value for x in span.attributes] == [b"\x00\xffraw", b"\x00\xffraw", b"\xfb\xff"]


@pytest.mark.parametrize("span", [
    {"traceId": TRACE, "trace_id": LINK_TRACE},  # one field under both names
    {"startTimeUnixNano": 1, "start_time_unix_nano": 1},
    {"attributes": [{"key": "k", "value": {"stringValue": "a", "string_value": "b"}}]},
], ids=["ids", "times", "anyvalue"])
def test_a_field_given_under_both_names_is_refused(span):
    with pytest.raises(OtlpJsonError, match="given twice"):
        parse(wrap(span))


def test_both_names_of_a_container_are_refused():
    with pytest.raises(OtlpJsonError, match="given twice"):
        parse({"resourceSpans": [], "resource_spans": [{"scopeSpans": []}]})


def test_two_members_of_one_any_value_are_refused():
    with pytest.raises(OtlpJsonError, match="oneof"):
        parse(wrap({"attributes": [{"key": "k", "value": {"stringValue": "a", "intValue": 1}}]}))


@pytest.mark.parametrize(("span", "where"), [
    ({"startTimeUnixNano": "12x"}, "startTimeUnixNano"),
    ({"startTimeUnixNano": 1.5}, "startTimeUnixNano"),
    ({"startTimeUnixNano": -1}, "startTimeUnixNano"),  # fixed64
    ({"droppedAttributesCount": 2 ** 32}, "droppedAttributesCount"),
    ({"name": 5}, "name"),
    ({"attributes": [{"key": "k", "value": {"boolValue": "true"}}]}, "attributes[0].value.boolValue"),
    ({"attributes": {"key": "k"}}, "attributes"),
    ({"attributes": [None]}, "attributes[0]"),
    ({"status": []}, "status"),
    ({"attributes": [{"key": "k", "value": {"doubleValue": "fast"}}]}, "doubleValue"),
])
def test_values_of_the_wrong_type_or_range_are_refused_with_where(span, where):
    with pytest.raises(OtlpJsonError) as caught:
        parse(wrap(span))
    assert where in str(caught.value)


@pytest.mark.parametrize("data", [
    {"resourceSpans": 5}, {"resourceSpans": [5]}, {"resourceSpans": [{"scopeSpans": [{"spans": 5}]}]},
    {"resourceSpans": [{"scopeSpans": [{"spans": "abc"}]}]}, [1, 2], "text", 3,
])
def test_wrong_shapes_are_refused(data):
    with pytest.raises(OtlpJsonError):
        parse(data)


@pytest.mark.parametrize("body", [b"{not json", b"", b"\xff\xfe\x00", b'{"resourceSpans": [}'])
def test_invalid_json(body):
    with pytest.raises(OtlpJsonError, match="invalid JSON"):
        parse(body)


def _deep_text(levels: int, kind: str) -> bytes:
    if kind == "array":
        opening, closing = '{"arrayValue":{"values":[', "]}}"
    else:
        opening, closing = '{"kvlistValue":{"values":[{"key":"k","value":', "}]}}"
    value = opening * levels + '{"stringValue":"bottom"}' + closing * levels
    return json.dumps(wrap({"attributes": [{"key": "deep", "value": "@@"}]})).replace('"@@"', value).encode()


@pytest.mark.parametrize("kind", ["array", "kvlist"])
@pytest.mark.parametrize("levels", [10_000, 300, 60])
def test_deep_nesting_is_refused_cleanly(kind, levels):
    with pytest.raises(OtlpJsonError):
        parse(_deep_text(levels, kind))


def test_deeply_nested_json_arrays_are_refused_cleanly():
    for body in (b'{"resourceSpans": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
                 b'{"resourceSpans": [{"scopeSpans": [{"spans": [{"futureField": ' + b"[" * 50_000
                 + b"]" * 50_000 + b"}]}]}]}",
                 b"[" * 1_000_000):
        with pytest.raises(OtlpJsonError):
            parse(body)


def test_nesting_up_to_the_bound_parses():
    # the attribute value is 6 messages deep; each array adds 2: 47 arrays reach MAX_DEPTH (100)
    assert MAX_DEPTH == 100
    span = only_span(parse(_deep_text(47, "array")))
    value = span.attributes[0].value
    for _ in range(47):
        value = value.array_value.values[0]
    assert value.string_value == "bottom"
    with pytest.raises(OtlpJsonError, match=f"nested more than {MAX_DEPTH} deep"):
        parse(_deep_text(48, "array"))
    span = only_span(parse(_deep_text(31, "kvlist")))  # 6 + 3 * 31 = 99
    with pytest.raises(OtlpJsonError, match=f"nested more than {MAX_DEPTH} deep"):
        parse(_deep_text(32, "kvlist"))


def test_round_trip_with_message_to_json():
    request = expected_request()
    assert parse(message_to_json(request)) == request
    assert json.loads(message_to_json(request))["resourceSpans"][0]["scopeSpans"][0]["spans"][0]["traceId"] == TRACE


def test_empty_object_is_an_empty_request():
    assert parse(b"{}") == ExportTraceServiceRequest()
