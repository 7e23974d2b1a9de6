"""Compact storage of span bodies: compressed OTLP ``TracesData`` fragments ("chunks").

A chunk holds the spans of one session from one export request, as the protobuf encoding of
a ``TracesData`` message (resource and scope written once per group), deflated::

    byte 0       format (1 = raw deflate, zlib level 1)
    bytes 1..4   span count, unsigned big-endian (the store's scripts read it)
    bytes 5..    deflate stream

Serialized ``TracesData`` messages concatenate into one valid message, so a session's spans
are ``TracesData.FromString(b"".join(inflate(chunk) for chunk in chunks))``. Building the
fragment by hand from already-serialized sub-messages avoids re-encoding anything.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterable, Sequence

__all__ = ["ChunkGroup", "encode_chunk", "decode_chunks", "chunk_span_count", "CHUNK_HEADER"]

CHUNK_HEADER = struct.Struct(">BI")
_FORMAT_DEFLATE = 1
_LEVEL = 1

# (resource bytes, resource schema_url, scope bytes, scope schema_url, [span bytes])
ChunkGroup = tuple[bytes, str, bytes, str, Sequence[bytes]]


def _varint(value: int) -> bytes:
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _field(tag: bytes, payload: bytes) -> bytes:
    """A length-delimited protobuf field: tag byte(s), varint length, payload."""
    return tag + _varint(len(payload)) + payload


# Tags of length-delimited fields (field_number << 3 | 2).
_T1, _T2, _T3 = b"\x0a", b"\x12", b"\x1a"


def traces_data_fragment(groups: Iterable[ChunkGroup]) -> bytes:
    """The protobuf encoding of a ``TracesData`` holding ``groups``."""
    parts = []
    for resource, resource_schema, scope, scope_schema, spans in groups:
        scope_spans = _field(_T1, scope) + b"".join([_field(_T2, span) for span in spans])
        if scope_schema:
            scope_spans += _field(_T3, scope_schema.encode())
        resource_spans = _field(_T1, resource) + _field(_T2, scope_spans)
        if resource_schema:
            resource_spans += _field(_T3, resource_schema.encode())
        parts.append(_field(_T1, resource_spans))
    return b"".join(parts)


def encode_chunk(groups: Sequence[ChunkGroup]) -> bytes:
    """A stored chunk of ``groups`` (see the module docstring for the format)."""
    count = sum(len(group[4]) for group in groups)
    compressor = zlib.compressobj(_LEVEL, zlib.DEFLATED, -15)
    body = compressor.compress(traces_data_fragment(groups)) + compressor.flush()
    return CHUNK_HEADER.pack(_FORMAT_DEFLATE, count) + body


def chunk_span_count(chunk: bytes) -> int:
    return CHUNK_HEADER.unpack_from(chunk)[1]


def decode_chunks(chunks: Iterable[bytes]) -> bytes:
    """The protobuf encoding of one ``TracesData`` with the spans of every chunk."""
    out = []
    for chunk in chunks:
        fmt, _count = CHUNK_HEADER.unpack_from(chunk)
        if fmt != _FORMAT_DEFLATE:
            raise ValueError(f"unknown chunk format {fmt}")
        out.append(zlib.decompress(chunk[CHUNK_HEADER.size:], -15))
    return b"".join(out)
