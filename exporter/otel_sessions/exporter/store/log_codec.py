"""Compact storage of log records: compressed OTLP ``LogsData`` fragments ("log chunks").

A log chunk holds the log records of one session from one export request (or of one trace
waiting for its session), compressed together, as span chunks are (``codec.py``)::

    byte 0       format: 1 = a Zstandard frame, level 5, with :data:`LOG_ZDICT` as its
                 raw-content dictionary
    bytes 1..4   record count, unsigned big-endian (``write_logs.lua`` reads it when it drops
                 the oldest chunks)
    bytes 5..    compressed: the protobuf encoding of a ``LogsData`` message with the records
                 (resource and scope written once per group)

``LogsData`` has the layout of ``TracesData`` (``resource_logs`` = 1; in it ``resource`` = 1,
``scope_logs`` = 2, ``schema_url`` = 3; in those ``scope`` = 1, ``log_records`` = 2,
``schema_url`` = 3), so the fragment is built by the span codec's
:func:`~.codec.traces_data_fragment` from already-serialized records, and the chunks of a
session concatenate into one valid ``LogsData`` message.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from otel_sessions.exporter.store.codec import CHUNK_HEADER, ZDICT, ChunkGroup, traces_data_fragment, zstd

__all__ = ["LOG_ZDICT", "encode_log_chunk", "decode_log_chunks", "log_chunk_count"]

_FORMAT = 1
#: Level 5: log chunks are small (a session's records of one request) and compress to about a
#: fifth; level 5 keeps 8% fewer bytes than level 3 for about 2 µs more per record
#: (``bench/logs_ingest.py``'s records, 20 per chunk).
_ZSTD_LEVEL = 5

def _framed(key: str) -> bytes:
    """The protobuf encoding of a ``KeyValue`` with ``key`` and an empty string value: how a
    record's attribute starts (matches from the first record of a chunk on)."""
    name = key.encode()
    return b"\x0a" + bytes((len(name),)) + name + b"\x12\x02\x0a\x00"


#: Raw-content dictionary of log chunks: what OpenTelemetry log records repeat (severity
#: texts, the attributes of the Python ``LoggingHandler`` and of GenAI events, as words and as
#: the protobuf framing of an attribute), then the span dictionary (resource attributes,
#: GenAI names, session ids). It can never change for format 1.
LOG_ZDICT = "\x00".join((
    "TRACE", "DEBUG", "INFO", "WARN", "WARNING", "ERROR", "FATAL", "CRITICAL",
    "code.file.path", "code.function.name", "code.line.number", "code.filepath", "code.function",
    "code.lineno", "code.namespace", "logger.name", "log.record.uid", "log.iostream", "thread.id", "thread.name",
    "MainThread", "exception.type", "exception.message", "exception.stacktrace", "event.name",
    "gen_ai.client.inference.operation.details", "gen_ai.user.message", "gen_ai.assistant.message",
    "gen_ai.system.message", "gen_ai.tool.message", "gen_ai.choice", "gen_ai.evaluation.result",
    "content", "role", "user", "assistant", "system", "tool", "finish_reason", "index", "message",
    "http.route", "http.request.method", "GET", "url.path", "/app/", ".py", "/usr/lib/python3",
    "site-packages/", "__init__", "<module>", "main", "handle", "run", "request", "response",
)).encode() + b"\x00" + ZDICT + b"".join(_framed(key) for key in (
    "code.file.path", "code.function.name", "code.line.number", "session.id", "gen_ai.conversation.id", "user.id",
    "session.name", "session.previous_id", "exception.type", "exception.message", "exception.stacktrace",
    "service.name", "service.version", "telemetry.sdk.language", "telemetry.sdk.name", "telemetry.sdk.version",
    "host.name", "deployment.environment.name",
))
_ZSTD_DICT = zstd.ZstdDict(LOG_ZDICT, is_raw=True)
_COMPRESSOR = zstd.ZstdCompressor(level=_ZSTD_LEVEL, zstd_dict=_ZSTD_DICT)
_FLUSH_FRAME = zstd.ZstdCompressor.FLUSH_FRAME


def encode_log_chunk(groups: Sequence[ChunkGroup], record_count: int) -> bytes:
    """A stored log chunk of ``groups`` (resource bytes, resource schema URL, scope bytes,
    scope schema URL, [serialized ``LogRecord``])."""
    data = traces_data_fragment(groups)
    return CHUNK_HEADER.pack(_FORMAT, record_count) + _COMPRESSOR.compress(data, _FLUSH_FRAME)


def log_chunk_count(chunk: bytes) -> int:
    """The record count of a log chunk (its header)."""
    return CHUNK_HEADER.unpack_from(chunk)[1]


def decode_log_chunks(chunks: Iterable[bytes]) -> bytes:
    """The protobuf encoding of one ``LogsData`` with the records of every chunk.

    Raises ``ValueError`` for a chunk of an unknown format."""
    parts = []
    for chunk in chunks:
        fmt = chunk[0] if chunk else None
        if fmt != _FORMAT:
            raise ValueError(f"unknown log chunk format {fmt}")
        parts.append(zstd.decompress(chunk[CHUNK_HEADER.size:], zstd_dict=_ZSTD_DICT))
    return b"".join(parts)
