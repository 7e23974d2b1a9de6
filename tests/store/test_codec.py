"""Stored chunks: what is written reads back, chunks of format 3 still read, and a trace's
usage is its model calls' or, without any, its largest aggregating span's."""

from __future__ import annotations

import struct
import zlib

import pytest
from opentelemetry.proto.common.v1.common_pb2 import InstrumentationScope
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import Span, TracesData

from otel_sessions.exporter.store.codec import (
    _ZSTD_DICT,
    CHUNK_HEADER,
    ZDICT,
    ZDICT_5,
    TraceFigures,
    chunk_traces,
    decode_chunks,
    encode_chunk,
    trace_entry,
    traces_data_fragment,
    zstd,
)

TRACE = bytes(range(16))


def _groups(count: int = 3):
    resource = Resource()
    resource.attributes.add(key="service.name").value.string_value = "svc"
    scope = InstrumentationScope(name="lib", version="1")
    spans = []
    for i in range(count):
        span = Span(trace_id=TRACE, span_id=bytes([i + 1]) * 8, name=f"op {i}",
                    start_time_unix_nano=1_000 * i, end_time_unix_nano=1_000 * i + 500)
        span.attributes.add(key="session.id").value.string_value = "s1"
        spans.append(span.SerializeToString())
    return [(resource.SerializeToString(), "https://opentelemetry.io/schemas/1.26.0",
             scope.SerializeToString(), "", spans)]


def _table():
    return [trace_entry(TRACE, 1, 9, 3, 1, 10, 20, 0.25, "op 0")]


def test_written_chunks_read_back_spans_and_trace_figures():
    chunk = encode_chunk(_groups(), 3, _table())
    fmt, count = CHUNK_HEADER.unpack_from(chunk)
    assert (fmt, count) == (5, 3)
    data = TracesData.FromString(decode_chunks([chunk, chunk]))
    names = [s.name for rs in data.resource_spans for ss in rs.scope_spans for s in ss.spans]
    assert names == ["op 0", "op 1", "op 2"] * 2
    assert data.resource_spans[0].schema_url == "https://opentelemetry.io/schemas/1.26.0"
    assert chunk_traces([chunk, chunk]) == {TRACE: TraceFigures(1, 9, 6, 2, 20, 40, 0.5, "op 0")}


def test_chunks_are_smaller_than_their_spans():
    groups = _groups(40)
    raw = len(traces_data_fragment(groups))
    assert len(encode_chunk(groups, 40, _table())) < raw / 3


def test_chunks_of_format_4_still_read():
    """Format 4 (the same layout, compressed with ZDICT) was written before; Redis may hold it
    within the retention."""
    fragment = traces_data_fragment(_groups())
    content = struct.pack(">I", 1) + _table()[0] + fragment
    body = zstd.ZstdCompressor(level=3, zstd_dict=_ZSTD_DICT).compress(content, zstd.ZstdCompressor.FLUSH_FRAME)
    chunk = CHUNK_HEADER.pack(4, 3) + body
    assert decode_chunks([chunk, encode_chunk(_groups(), 3, _table())]) == fragment * 2
    assert chunk_traces([chunk]) == {TRACE: TraceFigures(1, 9, 3, 1, 10, 20, 0.25, "op 0")}


def test_format_5_frames_attribute_keys_in_its_dictionary():
    """The framing of a KeyValue in the dictionary gives longer matches from a chunk's first
    span on: a chunk of spans with GenAI attributes is smaller than with ZDICT alone."""
    span = Span(trace_id=TRACE, span_id=b"\x01" * 8, name="chat gpt-4o")
    for key, value in (("gen_ai.operation.name", "chat"), ("gen_ai.request.model", "gpt-4o"),
                       ("gen_ai.usage.input_tokens", 120), ("gen_ai.usage.output_tokens", 33),
                       ("session.id", "sess_1"), ("user.id", "u1"), ("gen_ai.conversation.id", "t1")):
        attribute = span.attributes.add(key=key)
        if isinstance(value, int):
            attribute.value.int_value = value
        else:
            attribute.value.string_value = value
    content = struct.pack(">I", 0) + traces_data_fragment([(b"", "", b"", "", [span.SerializeToString()])])
    with_zdict = zstd.ZstdCompressor(level=3, zstd_dict=_ZSTD_DICT).compress(content, zstd.ZstdCompressor.FLUSH_FRAME)
    assert len(encode_chunk([(b"", "", b"", "", [span.SerializeToString()])], 1, [])) - 5 < len(with_zdict)
    assert b"\x0a\x15gen_ai.operation.name\x12" in ZDICT_5


def test_chunks_of_format_3_still_read():
    """Format 3 (16-bit trace count, no aggregate usage) was written before; Redis may hold it
    within the retention."""
    old_entry = struct.pack(">16sqqIIqqdB", TRACE, 1, 9, 3, 1, 10, 20, 0.25, 4) + b"op 0"
    fragment = traces_data_fragment(_groups())
    body = zstd.ZstdCompressor(level=3, zstd_dict=_ZSTD_DICT).compress(
        struct.pack(">H", 1) + old_entry + fragment, zstd.ZstdCompressor.FLUSH_FRAME)
    chunk = CHUNK_HEADER.pack(3, 3) + body
    assert decode_chunks([chunk]) == fragment
    assert chunk_traces([chunk]) == {TRACE: TraceFigures(1, 9, 3, 1, 10, 20, 0.25, "op 0")}


def test_a_trace_counts_its_model_calls_usage_else_its_largest_aggregate():
    agent_only = encode_chunk(_groups(), 3, [trace_entry(TRACE, 1, 9, 1, 0, 0, 0, 0.0, "agent", 56, 5, 0.5)])
    smaller = encode_chunk(_groups(), 3, [trace_entry(TRACE, 1, 9, 1, 0, 0, 0, 0.0, "", 20, 2, 0.1)])
    figures = chunk_traces([agent_only, smaller])[TRACE]
    assert figures.usage == (56, 5, 0.5)  # the largest aggregate, not the sum
    with_call = encode_chunk(_groups(), 3, [trace_entry(TRACE, 2, 8, 1, 0, 56, 5, 0.5, "")])
    assert chunk_traces([agent_only, with_call, smaller])[TRACE].usage == (56, 5, 0.5)  # the call's, once


def test_seventy_thousand_traces_in_one_chunk():
    table = [trace_entry(i.to_bytes(16, "big"), 1, 2, 1, 0, 0, 0, 0.0, "") for i in range(70_000)]
    chunk = encode_chunk(_groups(1), 1, table)
    assert len(chunk_traces([chunk])) == 70_000


def test_unknown_format_is_refused():
    with pytest.raises(ValueError, match="unknown chunk format 9"):
        decode_chunks([CHUNK_HEADER.pack(9, 1) + b"x"])


def test_dictionaries_never_change():
    """Stored chunks are read with these exact dictionaries: changing one needs a new format."""
    assert zlib.crc32(ZDICT) == 0x3017e673
    assert ZDICT_5.startswith(ZDICT) and zlib.crc32(ZDICT_5) == 0x62f5bf4b
