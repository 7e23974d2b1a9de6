"""Request bodies by Content-Encoding: every coding round-trips, bombs stop at the limit, bad bodies fail."""

from __future__ import annotations

import gzip
import http.server
import random
import sys
import threading
import time
import tracemalloc
import zlib

import pytest
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from otel_sessions.exporter.ingest.content_encoding import (
    SUPPORTED,
    DecodedTooLarge,
    EncodingError,
    UnsupportedEncoding,
    decode_body,
)

if sys.version_info >= (3, 14):
    from compression import zstd
else:
    from backports import zstd

MB = 1024 * 1024
#: Incompressible enough that bodies span several of the decoder's 64 KiB input steps.
DATA = random.Random(7).randbytes(300_000) + b"span " * 100_000


def raw_deflate(data: bytes) -> bytes:
    compressor = zlib.compressobj(wbits=-15)
    return compressor.compress(data) + compressor.flush()


def zstd_streamed(data: bytes, options: dict | None = None) -> bytes:
    """A zstd frame written as a stream: no content size in its header."""
    compressor = zstd.ZstdCompressor(options=options)
    return compressor.compress(data) + compressor.flush()


COMPRESSORS = {
    "gzip": gzip.compress,
    "deflate": zlib.compress,  # zlib format (RFC 1950), the HTTP coding
    "zstd": zstd.compress,
}


@pytest.mark.parametrize("encoding", ["gzip", "deflate", "zstd"])
def test_round_trip(encoding):
    assert decode_body(COMPRESSORS[encoding](DATA), encoding, len(DATA)) == DATA


def test_raw_deflate_under_the_deflate_name():
    assert decode_body(raw_deflate(DATA), "deflate", len(DATA)) == DATA
    assert decode_body(raw_deflate(b""), "deflate", 10) == b""


def test_streamed_zstd_frame():
    assert decode_body(zstd_streamed(DATA), "zstd", len(DATA)) == DATA


@pytest.mark.parametrize("header", [None, "", "identity", " Identity ", "identity, identity"])
def test_identity(header):
    assert decode_body(b"as is", header, 5) == b"as is"


def test_identity_over_the_limit():
    with pytest.raises(DecodedTooLarge):
        decode_body(b"123456", None, 5)


@pytest.mark.parametrize("header", ["GZIP", " gzip ", "\tGzip", "x-gzip", "X-GZip"])
def test_coding_names_are_case_insensitive_and_trimmed(header):
    assert decode_body(gzip.compress(b"abc"), header, 3) == b"abc"


def test_zlib_is_an_alias_of_deflate():
    assert decode_body(zlib.compress(b"abc"), "zlib", 3) == b"abc"


def test_supported_names():
    assert set(SUPPORTED) == {"gzip", "deflate", "zstd", "identity"}


def test_multi_member_gzip_reads_every_member():
    first, second, third = DATA[:200_000], b"second member", DATA[200_000:]
    body = gzip.compress(first) + gzip.compress(second) + gzip.compress(third)
    assert decode_body(body, "gzip", len(DATA) + len(second)) == first + second + third


def test_multi_member_gzip_counts_all_members_against_the_limit():
    body = gzip.compress(b"a" * 600) + gzip.compress(b"b" * 600)
    with pytest.raises(DecodedTooLarge):
        decode_body(body, "gzip", 1000)


def test_several_zstd_frames_and_a_skippable_frame():
    skippable = (0x184D2A50).to_bytes(4, "little") + (3).to_bytes(4, "little") + b"xyz"
    body = zstd.compress(b"one ") + skippable + zstd_streamed(b"two ") + zstd.compress(DATA)
    assert decode_body(body, "zstd", 8 + len(DATA)) == b"one two " + DATA


@pytest.mark.parametrize("encoding", ["gzip", "deflate", "zstd"])
def test_output_exactly_at_the_limit_passes_and_one_byte_over_fails(encoding):
    body = COMPRESSORS[encoding](DATA)
    assert decode_body(body, encoding, len(DATA)) == DATA
    with pytest.raises(DecodedTooLarge):
        decode_body(body, encoding, len(DATA) - 1)


def _zeros_bomb(encoding: str, size: int = 100 * MB) -> bytes:
    """``size`` zero bytes compressed, written a block at a time (never held in memory)."""
    block = bytes(MB)
    if encoding == "zstd":
        compressor = zstd.ZstdCompressor()
        return b"".join(compressor.compress(block) for _ in range(size // MB)) + compressor.flush()
    wbits = {"gzip": 16 + 15, "deflate": 15, "raw deflate": -15}[encoding]
    compressor = zlib.compressobj(9, zlib.DEFLATED, wbits)
    return b"".join(compressor.compress(block) for _ in range(size // MB)) + compressor.flush()


@pytest.mark.parametrize("encoding", ["gzip", "deflate", "raw deflate", "zstd"])
def test_bomb_stops_at_the_limit_quickly_and_in_little_memory(encoding):
    bomb = _zeros_bomb(encoding)
    assert len(bomb) < 200_000  # 100 MiB of zeros
    header = "deflate" if encoding == "raw deflate" else encoding
    tracemalloc.start()
    started = time.perf_counter()
    try:
        with pytest.raises(DecodedTooLarge):
            decode_body(bomb, header, MB)
        elapsed = time.perf_counter() - started
        _current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert elapsed < 1.0
    assert peak < 4 * MB  # the 1 MiB limit plus a step of output, not 100 MiB


def test_stacked_bomb_stops_at_the_limit():
    inner = _zeros_bomb("gzip")  # 100 MiB of zeros in ~100 kB, gzipped again
    with pytest.raises(DecodedTooLarge):
        decode_body(gzip.compress(inner), "gzip, gzip", MB)


@pytest.mark.parametrize("encoding", ["gzip", "deflate", "zstd"])
def test_truncated_body(encoding):
    body = COMPRESSORS[encoding](DATA)
    for cut in (len(body) // 2, len(body) - 1):
        with pytest.raises(EncodingError) as caught:
            decode_body(body[:cut], encoding, len(DATA))
        assert not isinstance(caught.value, UnsupportedEncoding)


def test_truncated_raw_deflate():
    with pytest.raises(EncodingError):
        decode_body(raw_deflate(DATA)[:-10], "deflate", len(DATA))


@pytest.mark.parametrize("encoding", ["gzip", "deflate", "zstd"])
@pytest.mark.parametrize("garbage", [b"x", b"\0\0\0\0", b"trailing garbage after the stream"])
def test_trailing_garbage(encoding, garbage):
    with pytest.raises(EncodingError):
        decode_body(COMPRESSORS[encoding](b"payload") + garbage, encoding, 100)


@pytest.mark.parametrize("encoding", ["gzip", "deflate", "zstd"])
@pytest.mark.parametrize("body", [b"not compressed at all", b"\x1f\x8b\x08 broken", b""])
def test_garbage_body(encoding, body):
    with pytest.raises(EncodingError) as caught:
        decode_body(body, encoding, 1000)
    assert not isinstance(caught.value, UnsupportedEncoding)


@pytest.mark.parametrize("header", ["br", "snappy", "lz4", "x-snappy-framed", "compress", "gzip;q=1"])
def test_unknown_encoding(header):
    with pytest.raises(UnsupportedEncoding) as caught:
        decode_body(b"whatever", header, 1000)
    assert caught.value.encoding == header
    assert isinstance(caught.value, EncodingError)


def test_unknown_encoding_in_a_list_is_refused_before_anything_is_decoded():
    with pytest.raises(UnsupportedEncoding) as caught:
        decode_body(b"not gzip", "BR, gzip", 1000)
    assert caught.value.encoding == "br"


def test_stacked_encodings_are_undone_in_reverse_order():
    # deflate applied first, then gzip: "Content-Encoding: deflate, gzip"
    body = gzip.compress(zlib.compress(DATA))
    assert decode_body(body, "deflate, gzip", len(DATA)) == DATA
    assert decode_body(body, "deflate,gzip, identity", len(DATA)) == DATA
    body = zstd.compress(gzip.compress(zlib.compress(b"three layers")))
    assert decode_body(body, "deflate, gzip, zstd", 100) == b"three layers"
    with pytest.raises(EncodingError):
        decode_body(body, "zstd, gzip, deflate", 100)  # the wrong order


def test_too_many_layers():
    body = gzip.compress(gzip.compress(gzip.compress(gzip.compress(b"x"))))
    with pytest.raises(UnsupportedEncoding):
        decode_body(body, "gzip, gzip, gzip, gzip", 100)


def test_zstd_frame_asking_for_a_huge_window_is_refused_under_a_small_limit():
    body = zstd_streamed(b"small", {zstd.CompressionParameter.window_log: 27})
    with pytest.raises(EncodingError):
        decode_body(body, "zstd", MB)
    assert decode_body(body, "zstd", 200 * MB) == b"small"  # a limit that large allows the window


class _Capture(http.server.BaseHTTPRequestHandler):
    requests: list[tuple[dict[str, str], bytes]] = []

    def do_POST(self):  # noqa: N802 (http.server's name)
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.requests.append((dict(self.headers), body))
        reply = ExportTraceServiceResponse().SerializeToString()
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)

    def log_message(self, *args):
        pass


@pytest.mark.parametrize("compression", [Compression.Deflate, Compression.Gzip])
def test_body_of_the_stock_otlp_http_exporter_decodes(compression):
    memory = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    with provider.get_tracer("t").start_as_current_span("compressed span") as span:
        span.set_attribute("session.id", "s-" + "x" * 2000)
    spans = memory.get_finished_spans()

    _Capture.requests = []
    server = http.server.HTTPServer(("127.0.0.1", 0), _Capture)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        exporter = OTLPSpanExporter(endpoint=f"http://127.0.0.1:{server.server_port}/v1/traces",
                                    compression=compression, timeout=10)
        exporter.export(spans)
        exporter.shutdown()
    finally:
        server.shutdown()
        server.server_close()
    (headers, body), = _Capture.requests
    encoding = {k.lower(): v for k, v in headers.items()}["content-encoding"]
    assert encoding == compression.value
    request = ExportTraceServiceRequest.FromString(decode_body(body, encoding, MB))
    (sent,) = request.resource_spans[0].scope_spans[0].spans
    assert sent.name == "compressed span"
    assert sent.span_id == spans[0].context.span_id.to_bytes(8, "big")
