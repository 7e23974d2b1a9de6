"""Compressed requests through the real receivers: the stock OTLP/HTTP exporter with deflate,
a zstd body, the stock OTLP/gRPC exporter with gzip and deflate, multi-member gzip."""

from __future__ import annotations

import gzip
import sys

import grpc
import pytest
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.exporter.otlp.proto.http import Compression

from tests.field.helpers import post, send, session, spans_json, tracer

if sys.version_info >= (3, 14):
    from compression import zstd
else:
    from backports import zstd


def _spans(session_id: str, name: str, tokens: int = 7):
    t, memory = tracer()
    with t.start_as_current_span(name, attributes={"session.id": session_id, "gen_ai.usage.input_tokens": tokens,
                                                   "padding": "x" * 4000}):
        pass
    return memory.get_finished_spans()


def _stored(service, session_id: str) -> set[str]:
    return {span["name"] for span in spans_json(service, session_id)}


def test_stock_http_exporter_with_deflate(service, session_id):
    send(service, _spans(session_id, "deflated"), "http", compression=Compression.Deflate)
    assert _stored(service, session_id) == {"deflated"}
    assert session(service, session_id)["input_tokens"] == 7


def test_zstd_body(service, session_id):
    body = encode_spans(_spans(session_id, "zstd span")).SerializeToString()
    compressed = zstd.compress(body)
    assert len(compressed) < len(body)
    status, _headers, reply = post(service, compressed, "application/x-protobuf",
                                   headers={"Content-Encoding": "zstd"})
    assert status == 200, reply
    assert _stored(service, session_id) == {"zstd span"}


@pytest.mark.parametrize("compression", [grpc.Compression.Gzip, grpc.Compression.Deflate])
def test_stock_grpc_exporter_with_compression(service, session_id, compression):
    send(service, _spans(session_id, f"grpc {compression.name}"), "grpc", compression=compression)
    assert _stored(service, session_id) == {f"grpc {compression.name}"}


def test_multi_member_gzip_stores_the_spans_of_every_member(service, session_id):
    first = encode_spans(_spans(session_id, "first member", 3)).SerializeToString()
    second = encode_spans(_spans(session_id, "second member", 4)).SerializeToString()
    status, _headers, reply = post(service, gzip.compress(first) + gzip.compress(second),
                                   "application/x-protobuf", headers={"Content-Encoding": "gzip"})
    assert status == 200, reply
    assert _stored(service, session_id) == {"first member", "second member"}
    detail = session(service, session_id)
    assert (detail["span_count"], detail["trace_count"], detail["input_tokens"]) == (2, 2, 7)
