"""The native span scanner against the pure-Python path: the same requests must give the same
Batch (groups, span records with their bytes, figures, payloads, errors), and malformed bytes
must be refused by both or give the same Batch in both.

Requests come from hypothesis (every slot key and alias, every value type, nesting, ids of any
length, zero ids, NaN / inf / huge numbers, control characters, metadata), from the benchmark
workload, and from truncating and flipping bits of those."""

from __future__ import annotations

import math
import os
import sys
from pathlib import Path

import pytest
from google.protobuf.message import DecodeError
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span, Status

from otel_sessions.exporter.ingest import grouping, native
from otel_sessions.exporter.ingest.groups import Batch, span_digest
from otel_sessions.processor import attributes as attr

pytestmark = [
    pytest.mark.skipif(native.scanner_problem() is not None, reason=f"{native.scanner_problem()}"),
    pytest.mark.skipif(not native.status()[0] and native.scanner_problem() is None,
                       reason=f"{native.ENV} forces the pure-Python path (this file compares both)"),
]

_scan = native._scan
PURE = grouping.BatchBuilder(max_id_length=64)
NATIVE = native.NativeBatchBuilder(max_id_length=64) if native.scanner_problem() is None else None
SETTINGS = settings(max_examples=int(os.environ.get("NATIVE_EXAMPLES", "150")), deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def outcome(builder: grouping.BatchBuilder, body: bytes, force: str | None):
    """What grouping ``body`` gives: the Batch in comparable form, or the refusal."""
    try:
        batch = builder.build_bytes(body, force_session=force)
    except DecodeError as exc:
        return ("DecodeError", str(exc))
    return comparable(batch)


def comparable(batch: Batch):
    groups = {}
    for kind, table in (("session", batch.sessions), ("orphan", batch.orphans)):
        for key, group in table.items():
            groups[(kind, key)] = (group, group.to_write(key if kind == "session" else "orphan"))
    return (list(groups), groups, list(batch.trace_sessions.items()), batch.operations, batch.span_count,
            batch.rejected, batch.invalid_ids, batch.invalid_values, batch.errors, batch.join_local(),
            list(batch.sessions), list(batch.orphans))


def assert_same(body: bytes, force: str | None = None) -> None:
    assert outcome(NATIVE, body, force) == outcome(PURE, body, force)


# --- requests ---------------------------------------------------------------------------------

SLOT_KEYS = sorted(grouping._SLOTS) + [attr.THREAD_ID, attr.SERVICE_NAME]
KEYS = st.one_of(
    st.sampled_from(SLOT_KEYS),
    st.sampled_from([attr.SESSION_ID, attr.THREAD_ID, "langfuse.session.id", attr.USER_ID]),  # repeated keys
    st.builds(lambda suffix: attr.SESSION_METADATA_PREFIX + suffix, st.text(max_size=12)),
    st.sampled_from(["", "session.metadata", "session.id.x", "http.method", "gen_ai.system"]),
    st.text(max_size=20),
)
TEXT = st.one_of(
    st.text(max_size=30),
    st.sampled_from(["sess-1", "sess-2", "thrd-1", "user-9", "12", " 7 ", "1e400", "NaN", "-inf", "1_000",
                     "true", "TRUE", "invoke_agent", "agent", "CHAIN", "workflow", "gpt-4o", "claude-3-5-sonnet",
                     "a\x00b", "tab\there", "   ", "\x85next", "x" * 300, "é", "😀"]),
)
NUMBERS = st.one_of(
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.sampled_from([0, 1, 7, 2**53 - 1, 2**53, 2**63 - 1, -(2**63), -1]),
)
FLOATS = st.one_of(st.floats(allow_nan=True, allow_infinity=True),
                   st.sampled_from([math.nan, math.inf, -math.inf, 0.0, -0.0, 1e30, 2.5, 1e9, 1e9 + 1]))


def any_value(draw, depth: int = 0) -> AnyValue:
    choice = draw(st.integers(0, 8 if depth < 2 else 5))
    value = AnyValue()
    if choice == 0:
        value.string_value = draw(TEXT)
    elif choice == 1:
        value.int_value = draw(NUMBERS)
    elif choice == 2:
        value.double_value = draw(FLOATS)
    elif choice == 3:
        value.bool_value = draw(st.booleans())
    elif choice == 4:
        value.bytes_value = draw(st.binary(max_size=8))
    elif choice == 5:
        pass  # no value at all
    elif choice == 6:
        value.array_value.values.extend([any_value(draw, depth + 1) for _ in range(draw(st.integers(0, 3)))])
    elif choice == 7:
        value.kvlist_value.values.extend([key_value(draw, depth + 1) for _ in range(draw(st.integers(0, 3)))])
    else:
        value.string_value_strindex = draw(st.integers(-5, 5))
    return value


def key_value(draw, depth: int = 0) -> KeyValue:
    kv = KeyValue(key=draw(KEYS))
    if draw(st.integers(0, 9)):  # a KeyValue may have no value
        kv.value.CopyFrom(any_value(draw, depth))
    return kv


IDS = st.one_of(st.binary(min_size=16, max_size=16), st.sampled_from([bytes(16), bytes([1]) * 16, bytes([2]) * 16]),
                st.binary(max_size=20))
SPAN_IDS = st.one_of(st.binary(min_size=8, max_size=8), st.sampled_from([bytes(8), bytes([5]) * 8]),
                     st.binary(max_size=10))
TIMES = st.one_of(st.integers(0, 2**64 - 1), st.sampled_from([0, 10**18, 2**53 * 1000 - 1, 2**53 * 1000 + 999]))
INT32 = st.one_of(st.integers(0, 5), st.integers(-(2**31), 2**31 - 1))


@st.composite
def spans(draw) -> Span:
    span = Span(trace_id=draw(IDS), span_id=draw(SPAN_IDS),
                parent_span_id=draw(st.one_of(st.just(b""), st.just(bytes(8)), SPAN_IDS)),
                name=draw(TEXT), kind=draw(INT32), start_time_unix_nano=draw(TIMES),
                end_time_unix_nano=draw(TIMES), trace_state=draw(st.sampled_from(["", "a=b"])),
                flags=draw(st.sampled_from([0, 1, 256 + 1, 2**32 - 1])),
                dropped_attributes_count=draw(st.sampled_from([0, 3, 2**32 - 1])))
    span.attributes.extend([key_value(draw) for _ in range(draw(st.integers(0, 10)))])
    for _ in range(draw(st.integers(0, 3))):
        event = span.events.add(name=draw(st.one_of(st.sampled_from(["exception", "session.end", "log"]), TEXT)),
                                time_unix_nano=draw(TIMES))
        event.attributes.extend([key_value(draw) for _ in range(draw(st.integers(0, 2)))])
    for _ in range(draw(st.integers(0, 2))):
        link = span.links.add(trace_id=draw(IDS), span_id=draw(SPAN_IDS), flags=draw(st.sampled_from([0, 1])))
        link.attributes.extend([key_value(draw) for _ in range(draw(st.integers(0, 2)))])
    if draw(st.booleans()):
        span.status.CopyFrom(Status(code=draw(INT32), message=draw(st.sampled_from(["", "boom"]))))
    return span


@st.composite
def requests(draw) -> ExportTraceServiceRequest:
    request = ExportTraceServiceRequest()
    for _ in range(draw(st.integers(0, 2))):
        rs = ResourceSpans(schema_url=draw(st.sampled_from(["", "https://opentelemetry.io/schemas/1.30.0"])))
        if draw(st.integers(0, 4)):
            rs.resource.attributes.extend([key_value(draw) for _ in range(draw(st.integers(0, 4)))])
            for _ in range(draw(st.integers(0, 3))):
                key = draw(st.sampled_from([attr.SERVICE_NAME, "deployment.environment.name", "deployment.environment"]))
                rs.resource.attributes.add(key=key).value.CopyFrom(any_value(draw))
            entity = rs.resource.entity_refs.add(type=draw(st.sampled_from(["", "service"])))
            entity.id_keys.extend(draw(st.lists(st.sampled_from(["", "service.name"]), max_size=2)))
        for _ in range(draw(st.integers(0, 2))):
            ss = ScopeSpans(schema_url=draw(st.sampled_from(["", "s"])))
            if draw(st.booleans()):
                ss.scope.name = draw(TEXT)
                ss.scope.version = draw(st.sampled_from(["", "1.0"]))
                ss.scope.attributes.extend([key_value(draw) for _ in range(draw(st.integers(0, 2)))])
            ss.spans.extend(draw(st.lists(spans(), max_size=4)))
            rs.scope_spans.append(ss)
        request.resource_spans.append(rs)
    return request


# --- the comparisons -------------------------------------------------------------------------

def test_the_scanner_reads_the_installed_opentelemetry_proto_messages():
    assert _scan.schema() == native.descriptor_schema()


@SETTINGS
@given(requests(), st.sampled_from([None, "forced"]))
def test_generated_requests_group_alike(request, force):
    body = request.SerializeToString()
    assert isinstance(_scan.scan(body), list), "a serializer's own output is canonical"
    assert_same(body, force)


@SETTINGS
@given(requests(), st.data())
def test_truncated_and_bit_flipped_requests_are_refused_or_read_alike(request, data):
    body = bytearray(request.SerializeToString())
    if not body:
        return
    for _ in range(data.draw(st.integers(1, 3))):
        at = data.draw(st.integers(0, len(body) - 1))
        body[at] ^= 1 << data.draw(st.integers(0, 7))
    if data.draw(st.booleans()):
        body = body[:data.draw(st.integers(0, len(body)))]
    assert_same(bytes(body))


def workload(n: int = 3) -> list[bytes]:
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    from bench.workload import export_requests

    return list(export_requests(n, spans_per_request=256, sessions_per_request=20, session_pool=60, seed=3))


def test_workload_requests_group_alike_natively():
    for body in workload():
        assert isinstance(_scan.scan(body), list)
        assert_same(body)
        assert_same(body, force="forced")


def test_every_truncation_of_a_small_request_is_refused_or_read_alike():
    request = ExportTraceServiceRequest()
    span = request.resource_spans.add().scope_spans.add().spans.add(trace_id=bytes([1]) * 16,
                                                                    span_id=bytes([2]) * 8, name="chat")
    for key, value in (("session.id", "s"), ("gen_ai.usage.input_tokens", 12), ("session.metadata.plan", "pro")):
        kv = span.attributes.add(key=key)
        if isinstance(value, str):
            kv.value.string_value = value
        else:
            kv.value.int_value = value
    body = request.SerializeToString()
    for end in range(len(body) + 1):
        assert_same(body[:end])


# --- encodings the scanner leaves to upb ------------------------------------------------------

def _varint(n: int) -> bytes:
    out = bytearray()
    while n > 0x7F:
        out.append(n & 0x7F | 0x80)
        n >>= 7
    return bytes(out) + bytes([n])


def _field(number: int, payload: bytes) -> bytes:
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def _request(span: bytes) -> bytes:
    return _field(1, _field(2, _field(2, span)))


IDS_PART = _field(1, bytes([1]) * 16) + _field(2, bytes([2]) * 8)
SESSION = _field(9, _field(1, b"session.id") + _field(2, _field(1, b"s")))


@pytest.mark.parametrize(("span", "why"), [
    (_field(5, b"n") + IDS_PART + SESSION, "fields out of canonical order"),
    (IDS_PART + b"\x30\x00" + SESSION, "zero value written"),  # kind = 0 written out
    (IDS_PART + _field(5, b"a") + _field(5, b"b") + SESSION, "fields out of canonical order"),  # name twice
    (IDS_PART + b"\x30\x81\x00" + SESSION, "varint not minimal"),
    (IDS_PART + SESSION + b"\x88\x01\x07", "field not in the schema"),  # field 17
    (IDS_PART + b"\x2d\x00\x00\x00\x00" + SESSION, "unexpected wire type"),  # name as fixed32
    (IDS_PART + _field(5, b"\xed\xa0\x80") + SESSION, "string not UTF-8"),  # a surrogate
    (IDS_PART + _field(5, b"\xc0\xaf") + SESSION, "string not UTF-8"),  # overlong
    (IDS_PART + _field(9, _field(2, _field(1, b"v")) + _field(1, b"session.id")), "fields out of canonical order"),
    (IDS_PART + b"\x30" + _varint(2**32 + 1) + SESSION, "int32 out of range"),  # kind 1 in 64 bits
    (IDS_PART + SESSION + b"\x50" + _varint(2**32), "uint32 out of range"),  # dropped_attributes_count
    (IDS_PART + _field(9, _field(1, b"session.escalated") + _field(2, b"\x10\x02")), "bool neither 0 nor 1"),
    (IDS_PART + _field(9, _field(1, b"session.id") + _field(2, _field(1, b"s") + b"\x18\x05")),
     "two members of a oneof"),
    (IDS_PART + _field(4, b"") + SESSION, "empty value written"),  # parent_span_id
    (IDS_PART + SESSION + b"\x85\x01\x00\x00\x00\x00", "zero value written"),  # flags (fixed32)
    (IDS_PART + b"\x39" + bytes(8) + SESSION, "zero value written"),  # start time (fixed64)
    (IDS_PART + SESSION + _field(15, b"") + _field(15, b""), "fields out of canonical order"),  # status twice
])
def test_other_encodings_go_to_upb_and_group_alike(span, why):
    body = _request(span)
    assert _scan.scan(body) == why
    assert_same(body)


UTF8_EDGES = [b"\xc3\x28", b"\xe2\x82", b"\xe2\x28\xa1", b"\xf4\x90\x80\x80", b"\xf5\x80\x80\x80", b"\x80",
              b"\xc1\xbf", b"\xe0\x80\xaf", b"\xf0\x80\x80\xaf", b"\xed\x9f\xbf", b"\xee\x80\x80",
              b"\xf0\x90\x80\x80", b"\xf4\x8f\xbf\xbf", b"\xdf\xbf", b"\xc2\x80", b"\xef\xbf\xbf", b"\xff"]


@SETTINGS
@given(st.one_of(st.binary(min_size=1, max_size=12), st.sampled_from(UTF8_EDGES),
                 st.lists(st.sampled_from(UTF8_EDGES + [b"a" * 7, b"\xe2\x82\xac"]), min_size=1, max_size=4)
                 .map(b"".join)))
def test_strings_are_read_only_when_they_are_strict_utf8(name):
    body = _request(IDS_PART + _field(5, name) + SESSION)
    try:
        name.decode("utf-8")
    except UnicodeDecodeError:
        assert _scan.scan(body) == "string not UTF-8"
    else:
        assert isinstance(_scan.scan(body), list)
    assert_same(body)


def test_equal_ranks_first_wins_but_the_last_conversation_id_names_the_session():
    def kv(key: str, value: bytes) -> bytes:
        return _field(9, _field(1, key.encode()) + _field(2, _field(1, value)))

    span = IDS_PART + kv("gen_ai.conversation.id", b"c1") + kv("user.id", b"u1") + kv("user.id", b"u2") + kv(
        "gen_ai.conversation.id", b"c2") + kv("langfuse.user.id", b"u0")
    batch = NATIVE.build_bytes(_request(span))
    assert list(batch.sessions) == ["c2"] and batch.sessions["c2"].thread_id == "c1"
    assert batch.sessions["c2"].user_id == "u1"
    assert_same(_request(span))


def _nested(depth: int) -> bytes:
    """An AnyValue: ``depth`` arrays, one inside the other, around an int."""
    value = b"\x18\x01"
    for _ in range(depth):
        value = _field(5, _field(1, value))
    return value


@pytest.mark.parametrize("depth", [5, 28, 29, 30, 40, 47, 48, 49, 60])
def test_deep_nesting_is_bounded_and_left_to_upb(depth):
    span = IDS_PART + _field(9, _field(1, b"session.id") + _field(2, _nested(depth)))
    body = _request(span)
    result = _scan.scan(body)
    # below the request: resource spans, scope spans, span, key value, value (5), then 2 per array
    assert isinstance(result, list) if 5 + 2 * depth <= _scan.MAX_DEPTH else result == "nested too deep"
    assert_same(body)


@SETTINGS
@given(st.binary(min_size=16, max_size=16), st.binary(min_size=8, max_size=8))
def test_span_digests_are_those_of_groups(trace_id, span_id):
    assert _scan.span_digest(trace_id, span_id) == span_digest(trace_id, span_id)


def test_buffers_and_bad_arguments():
    body = workload(1)[0]
    assert _scan.scan(memoryview(body)) == _scan.scan(bytearray(body)) == _scan.scan(body)
    with pytest.raises(TypeError):
        _scan.scan("not bytes")
    with pytest.raises(ValueError):
        _scan.span_digest(bytes(15), bytes(8))
    assert _scan.scan(b"") == []
