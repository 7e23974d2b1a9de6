"""Request bodies by ``Content-Encoding``: bounded decoding of gzip, deflate and zstd.

What is supported, and the rules followed:

* OTLP/HTTP (opentelemetry-specification, protocol/otlp.md) lets clients compress request
  bodies and name the compression in ``Content-Encoding``; the OpenTelemetry Collector's
  ``confighttp`` decoders are the model for which codings a receiver takes: ``gzip``,
  ``deflate`` and ``zlib`` (both read as zlib), ``zstd``, ``snappy`` and ``lz4``.
* ``Content-Encoding`` itself (RFC 9110 §8.4): coding names are case-insensitive; the value
  is a comma-separated list of the codings applied in order, so they are undone in reverse
  order; ``identity`` (and an empty value or no header) means the body is as is; ``x-gzip``
  is ``gzip`` (§8.4.1.3). At most :data:`MAX_LAYERS` codings other than identity are taken.

The codings:

``gzip`` (``x-gzip``)
    RFC 1952. Every member of a multi-member stream is read, and their contents
    concatenated; bytes after the last member that do not start another member, and a
    stream that ends inside a member, are errors.
``deflate`` (``zlib``)
    The HTTP ``deflate`` coding is the zlib format (RFC 1950, RFC 9110 §8.4.1.2), which the
    Collector and the stock Python OTLP/HTTP exporter (``OTEL_EXPORTER_OTLP_COMPRESSION=deflate``,
    ``zlib.compress``) send; some clients send raw deflate (RFC 1951) under the same name, so
    a body that does not read as zlib is read again as raw deflate. One stream; anything
    after its end is an error.
``zstd``
    RFC 8878, with the standard library's ``compression.zstd`` (``backports.zstd`` before
    Python 3.14). Several frames are read one after the other, skippable frames included.
    A frame may not ask for a window (the decoder's history buffer) larger than
    ``max(8 MiB, limit)`` rounded up to a power of two: 8 MiB covers what every standard
    compression level (1 to 19) asks for when it streams, and a body within the limit never
    needs more, so a few bytes cannot make the decoder allocate the format's 2 GiB maximum.
``identity``
    The body as is.

``snappy``, ``x-snappy-framed``, ``lz4`` and ``br`` are not supported (no decoder for them is
installed): they raise :class:`UnsupportedEncoding`, as does any other name.

Limits: :func:`decode_body` never returns more than ``limit`` bytes. Each coding is undone
incrementally, at most 64 KiB of input and 256 KiB of output per step, and
:class:`DecodedTooLarge` is raised as soon as the output passes ``limit``, so a compression
bomb costs about ``limit`` bytes of memory and the time to produce them, whatever its
expanded size. With stacked codings each layer's output is bounded by ``limit`` in the same
way. An identity body longer than ``limit`` also raises :class:`DecodedTooLarge`.

Errors map to HTTP statuses: :class:`UnsupportedEncoding` 415, :class:`EncodingError` 400
(the body does not decode, including an empty body under a compression coding),
:class:`DecodedTooLarge` 413.
"""

from __future__ import annotations

import io
import sys
import zlib
from collections.abc import Callable

if sys.version_info >= (3, 14):
    from compression import zstd
else:  # the standard library's module, backported
    from backports import zstd

__all__ = ["EncodingError", "UnsupportedEncoding", "DecodedTooLarge", "SUPPORTED", "MAX_LAYERS", "decode_body"]

#: The content codings :func:`decode_body` undoes (aliases: ``x-gzip`` for gzip, ``zlib`` for deflate).
SUPPORTED: tuple[str, ...] = ("gzip", "deflate", "zstd", "identity")
#: Most codings other than identity in one ``Content-Encoding`` value.
MAX_LAYERS = 3

_IN_STEP = 64 * 1024
_OUT_STEP = 256 * 1024
_ZSTD_MIN_WINDOW_LOG = 23  # 8 MiB: the largest window of the standard levels 1..19
_ZSTD_MAX_WINDOW_LOG = 31


class EncodingError(ValueError):
    """The body does not decode under its ``Content-Encoding`` (HTTP 400)."""


class UnsupportedEncoding(EncodingError):
    """A ``Content-Encoding`` this receiver does not decode (HTTP 415); ``encoding`` names it."""

    def __init__(self, encoding: str, message: str | None = None) -> None:
        self.encoding = encoding
        super().__init__(message or f"unsupported content encoding {encoding!r}: use "
                         + ", ".join(SUPPORTED[:-1]) + " or " + SUPPORTED[-1])


class DecodedTooLarge(ValueError):
    """The decoded body is larger than the limit (HTTP 413)."""


def _parse(content_encoding: str | None) -> list[str]:
    """The codings to undo, outermost first (identity and empty list elements dropped)."""
    if not content_encoding:
        return []
    codings = []
    for item in content_encoding.split(","):
        name = item.strip().lower()
        if name in ("", "identity"):
            continue
        name = _ALIASES.get(name, name)
        if name not in _DECODERS:
            raise UnsupportedEncoding(name)
        codings.append(name)
    if len(codings) > MAX_LAYERS:
        raise UnsupportedEncoding(", ".join(codings),
                                  f"more than {MAX_LAYERS} content codings in {content_encoding.strip()!r}")
    codings.reverse()
    return codings


def check_encoding(content_encoding: str | None) -> None:
    """Raise :class:`UnsupportedEncoding` now, before a body is read, when ``content_encoding``
    names a coding this module does not decode."""
    _parse(content_encoding)


def decode_body(body: bytes, content_encoding: str | None, limit: int) -> bytes:
    """``body`` with the codings of ``content_encoding`` (the raw header value) undone.

    Raises :class:`UnsupportedEncoding` for a coding not in :data:`SUPPORTED` (nothing is
    decoded then), :class:`EncodingError` for a body that does not decode, and
    :class:`DecodedTooLarge` as soon as a layer's output passes ``limit`` bytes.
    """
    codings = _parse(content_encoding)
    if not codings and len(body) > limit:
        raise DecodedTooLarge(f"body of {len(body)} bytes over the {limit} byte limit")
    for name in codings:
        if not body:
            raise EncodingError(f"empty body is not a {name} stream")
        body = _DECODERS[name](body, limit)
    return body


class _Output:
    """Decoded bytes, counted against the limit as they come."""

    def __init__(self, limit: int, name: str) -> None:
        self.buffer = io.BytesIO()
        self.size = 0
        self.limit = limit
        self.name = name

    def room(self) -> int:
        """Most bytes to ask of the next step: up to one past the limit, to see it passed."""
        return min(_OUT_STEP, self.limit - self.size + 1)

    def add(self, chunk: bytes) -> None:
        self.size += len(chunk)
        if self.size > self.limit:
            raise DecodedTooLarge(f"{self.name} body decodes to over the {self.limit} byte limit")
        self.buffer.write(chunk)

    def value(self) -> bytes:
        return self.buffer.getvalue()  # BytesIO hands over its buffer without a copy


def _inflate(body: bytes, wbits: int, limit: int, name: str, multi_member: bool) -> bytes:
    """Undo zlib-library formats (gzip, zlib, raw deflate) incrementally, within ``limit``."""
    out = _Output(limit, name)
    view = memoryview(body)
    end = len(view)
    position = 0
    decompressor = zlib.decompressobj(wbits)
    pending: bytes | memoryview = b""
    filled = False  # the last step filled its output: the decompressor may hold more
    while True:
        if not pending and not filled:
            if position >= end:
                raise EncodingError(f"truncated {name} body: the stream ends early")
            pending = view[position:position + _IN_STEP]
            position += len(pending)
        want = out.room()
        try:
            chunk = decompressor.decompress(pending, want)
        except zlib.error as exc:
            raise EncodingError(f"invalid {name} body: {exc}") from None
        out.add(chunk)
        filled = len(chunk) == want
        if decompressor.eof:
            rest = decompressor.unused_data
            if not rest and position >= end:
                return out.value()
            if not multi_member:
                raise EncodingError(f"invalid {name} body: data after the end of the stream")
            # another gzip member; anything else fails its header check
            decompressor = zlib.decompressobj(wbits)
            pending, filled = rest, False
        else:
            pending = decompressor.unconsumed_tail


def _gzip(body: bytes, limit: int) -> bytes:
    return _inflate(body, 16 + zlib.MAX_WBITS, limit, "gzip", multi_member=True)


def _deflate(body: bytes, limit: int) -> bytes:
    try:
        return _inflate(body, zlib.MAX_WBITS, limit, "deflate", multi_member=False)
    except DecodedTooLarge:
        raise
    except EncodingError as exc:
        as_zlib = str(exc)  # keep the message, not the traceback (it holds the partial output)
    try:
        return _inflate(body, -zlib.MAX_WBITS, limit, "raw deflate", multi_member=False)
    except DecodedTooLarge:
        raise
    except EncodingError as exc:
        as_raw = str(exc)
    raise EncodingError(f"{as_zlib}; read as raw deflate: {as_raw.removeprefix('invalid raw deflate body: ')}")


def _zstd_options(limit: int) -> dict:
    window_log = min(max(_ZSTD_MIN_WINDOW_LOG, (limit - 1).bit_length()), _ZSTD_MAX_WINDOW_LOG)
    return {zstd.DecompressionParameter.window_log_max: window_log}


def _zstd(body: bytes, limit: int) -> bytes:
    out = _Output(limit, "zstd")
    options = _zstd_options(limit)
    view = memoryview(body)
    end = len(view)
    position = 0
    decompressor = zstd.ZstdDecompressor(options=options)
    pending: bytes | memoryview = b""
    while True:
        if not pending and decompressor.needs_input:
            if position >= end:
                raise EncodingError("truncated zstd body: the frame ends early")
            pending = view[position:position + _IN_STEP]
            position += len(pending)
        try:
            chunk = decompressor.decompress(pending, out.room())
        except zstd.ZstdError as exc:
            raise EncodingError(f"invalid zstd body: {exc}") from None
        pending = b""  # taken in whole; what the output limit left is kept inside (needs_input False)
        out.add(chunk)
        if decompressor.eof:
            rest = decompressor.unused_data
            if not rest and position >= end:
                return out.value()
            decompressor = zstd.ZstdDecompressor(options=options)  # the next frame
            pending = rest


_DECODERS: dict[str, Callable[[bytes, int], bytes]] = {"gzip": _gzip, "deflate": _deflate, "zstd": _zstd}
_ALIASES = {"x-gzip": "gzip", "zlib": "deflate"}
