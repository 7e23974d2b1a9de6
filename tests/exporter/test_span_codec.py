"""Stored chunks: what is written reads back, and chunks of earlier formats still read."""

from __future__ import annotations

import zlib

import pytest
from opentelemetry.proto.common.v1.common_pb2 import InstrumentationScope
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import Span, TracesData

from otel_sessions.exporter.store.codec import (
    CHUNK_HEADER,
    ZDICT,
    TraceFigures,
    chunk_content,
    chunk_traces,
    decode_chunks,
    encode_chunk,
    trace_entry,
    traces_data_fragment,
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
    assert (fmt, count) == (3, 3)
    data = TracesData.FromString(decode_chunks([chunk, chunk]))
    names = [s.name for rs in data.resource_spans for ss in rs.scope_spans for s in ss.spans]
    assert names == ["op 0", "op 1", "op 2"] * 2
    assert data.resource_spans[0].schema_url == "https://opentelemetry.io/schemas/1.26.0"
    assert chunk_traces([chunk, chunk]) == {TRACE: TraceFigures(1, 9, 6, 2, 20, 40, 0.5, "op 0")}


def test_chunks_are_smaller_than_their_spans():
    groups = _groups(40)
    raw = len(traces_data_fragment(groups))
    assert len(encode_chunk(groups, 40, _table())) < raw / 3


@pytest.mark.parametrize("fmt", [1, 2])
def test_chunks_of_earlier_formats_still_read(fmt):
    """Format 2 (deflate with the dictionary) and format 1 (plain deflate, no trace table)
    were written by earlier versions; Redis may still hold them within the retention."""
    fragment = traces_data_fragment(_groups())
    if fmt == 2:
        compressor = zlib.compressobj(1, zlib.DEFLATED, -15, zdict=ZDICT)
        body = compressor.compress(chunk_content(_groups(), _table())) + compressor.flush()
    else:
        compressor = zlib.compressobj(1, zlib.DEFLATED, -15)
        body = compressor.compress(fragment) + compressor.flush()
    chunk = CHUNK_HEADER.pack(fmt, 3) + body
    assert decode_chunks([chunk]) == fragment
    assert chunk_traces([chunk]) == ({TRACE: TraceFigures(1, 9, 3, 1, 10, 20, 0.25, "op 0")} if fmt == 2 else {})


def test_unknown_format_is_refused():
    with pytest.raises(ValueError, match="unknown chunk format 9"):
        decode_chunks([CHUNK_HEADER.pack(9, 1) + b"x"])


def test_dictionary_never_changes():
    """Stored chunks are read with this exact dictionary: changing it needs a new format."""
    assert zlib.crc32(ZDICT) == 0x3017e673
