"""Compact storage of span bodies: compressed OTLP ``TracesData`` fragments ("chunks").

A chunk holds the spans of one session from one export request, with the figures of each
of their traces, compressed together::

    byte 0       format: 5 = a Zstandard frame, level 3, with :data:`ZDICT_5` as its raw-content
                 dictionary, trace entries with the aggregate usage (written); 4 = the same
                 with :data:`ZDICT` (read only); 3 = as 4 with a 16-bit trace count and no
                 aggregate usage (read only)
    bytes 1..4   span count, unsigned big-endian (the store's script reads it)
    bytes 5..    compressed:
                   uint32 trace count, then per trace :data:`TRACE_ENTRY` + root span name;
                   then the protobuf encoding of a ``TracesData`` message with the spans
                   (resource and scope written once per group)

Zstandard at level 3 with the dictionary makes chunks 3% smaller than deflate at level 1 with
it, at 40% of deflate's CPU (``bench/codec.py``). :data:`ZDICT_5` adds the protobuf framing
of each attribute key (how a ``KeyValue`` starts): 4% fewer bytes than :data:`ZDICT` on
``bench/workload.py`` chunks (130 against 136 bytes per span) and a little less CPU.

A trace entry keeps two usages: the usage of its model-call spans, and the largest usage an
aggregating span (an agent or chain that sums its children) carried. A trace's usage is the
first when any model call carried usage, else the second (``docs/conventions.md``).

Serialized ``TracesData`` messages concatenate into one valid message, so a session's spans
are ``TracesData.FromString(b"".join(span bodies))``. Building the fragment by hand from
already-serialized sub-messages avoids re-encoding anything.

The trace table makes the store append-only: a session's per-trace figures (the trace list
of a session's detail) are the sum over its chunks' tables, read when a detail is asked for,
instead of a per-trace hash rewritten on every write.
"""

from __future__ import annotations

import struct
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from opentelemetry.proto.trace.v1.trace_pb2 import TracesData

if sys.version_info >= (3, 14):
    from compression import zstd
else:  # the standard library's module, backported
    from backports import zstd

__all__ = ["ChunkGroup", "TraceFigures", "encode_chunk", "decode_chunks", "chunk_traces", "dedupe_spans",
           "drop_seen_spans", "CHUNK_HEADER", "TRACE_ENTRY", "ZDICT", "ZDICT_5"]

CHUNK_HEADER = struct.Struct(">BI")
#: trace id, start µs, end µs, spans, errors, input tokens, output tokens, cost USD (model
#: calls), input tokens, output tokens, cost USD (largest aggregating span), name length
TRACE_ENTRY = struct.Struct(">16sqqIIqqdqqdB")
_COUNT = struct.Struct(">I")
_FORMAT = 5
_FORMAT_4 = 4  # read only
_FORMAT_3 = 3  # read only
_TRACE_ENTRY_3 = struct.Struct(">16sqqIIqqdB")
_COUNT_3 = struct.Struct(">H")
_ZSTD_LEVEL = 3

#: Raw-content dictionary of the Zstandard frames: OpenTelemetry semantic-convention keys and values that
#: LLM/agent spans repeat (GenAI, OpenInference, Traceloop, HTTP, exceptions, resources).
#: It gives matches from the first span on; it can never change for formats 3 and 4.
ZDICT = "\x00".join((
    "telemetry.sdk.language", "python", "telemetry.sdk.name", "opentelemetry", "telemetry.sdk.version",
    "service.name", "service.version", "service.namespace", "service.instance.id",
    "deployment.environment.name", "deployment.environment", "production", "host.name", "host.arch",
    "process.pid", "process.runtime.name", "cpython", "process.runtime.version", "k8s.pod.name",
    "k8s.namespace.name", "cloud.provider", "cloud.region", "container.id",
    "exception", "exception.type", "exception.message", "exception.stacktrace", "exception.escaped",
    "Traceback (most recent call last):", "http.request.method", "POST", "http.response.status_code",
    "url.full", "https://", "server.address", "server.port", "api.openai.com",
    "openinference.span.kind", "LLM", "CHAIN", "TOOL", "AGENT", "RETRIEVER", "EMBEDDING",
    "llm.model_name", "llm.provider", "llm.system", "llm.token_count.prompt",
    "llm.token_count.completion", "llm.token_count.total", "llm.invocation_parameters",
    "input.value", "input.mime_type", "output.value", "output.mime_type", "application/json",
    "text/plain", "traceloop.span.kind", "traceloop.entity.name", "traceloop.workflow.name",
    "gen_ai.prompt", "gen_ai.completion", "langfuse.session.id", "langfuse.user.id",
    "session.metadata.", "session.previous_id", "session.escalated", "session.end", "state_change",
    "gen_ai.input.messages", "gen_ai.output.messages", "gen_ai.system_instructions",
    "gen_ai.tool.call.arguments", "gen_ai.tool.call.result", "gen_ai.tool.description",
    "gen_ai.tool.type", "function", "gen_ai.data_source.id", "gen_ai.output.type",
    "gen_ai.request.top_p", "gen_ai.request.frequency_penalty", "gen_ai.request.presence_penalty",
    "gen_ai.request.seed", "gen_ai.request.stop_sequences", "gen_ai.request.choice.count",
    "gen_ai.usage.cost", "gen_ai.usage.cache_read.input_tokens", "gen_ai.provider.name",
    "anthropic", "aws.bedrock", "gcp.vertex_ai", "azure.ai.openai", "gen_ai.system", "openai",
    "gen_ai.agent.id", "gen_ai.agent.description", "create_agent", "embeddings",
    "text_completion", "generate_content", "gen_ai.embeddings.dimension.count", "stop", "length",
    "tool_calls", "gen_ai.response.finish_reasons", "gen_ai.response.id", "chatcmpl-", "call_",
    "gen_ai.request.temperature", "gen_ai.request.max_tokens", "gen_ai.request.model",
    "gen_ai.response.model", "gen_ai.usage.input_tokens", "gen_ai.usage.output_tokens",
    "gen_ai.tool.call.id", "gen_ai.tool.name", "execute_tool", "gen_ai.agent.name",
    "invoke_agent", "chat", "gen_ai.operation.name", "session.name", "user.id",
    "gen_ai.conversation.id", "session.id",
)).encode()
#: Dictionary of format 5: :data:`ZDICT`, then for each of its attribute keys (the words with a
#: dot) the protobuf bytes a ``KeyValue`` with that key starts with (``0x0a``, the key's
#: length, the key, ``0x12``: the value's tag). It can never change for format 5.
ZDICT_5 = ZDICT + b"".join(b"\x0a" + bytes((len(key),)) + key + b"\x12"
                           for key in ZDICT.split(b"\x00") if b"." in key)
_ZSTD_DICT = zstd.ZstdDict(ZDICT, is_raw=True)
_ZSTD_DICT_5 = zstd.ZstdDict(ZDICT_5, is_raw=True)
_DICTIONARIES = {_FORMAT: _ZSTD_DICT_5, _FORMAT_4: _ZSTD_DICT, _FORMAT_3: _ZSTD_DICT}
# One compressor for the process, each call one whole frame (no per-chunk set-up).
_COMPRESSOR = zstd.ZstdCompressor(level=_ZSTD_LEVEL, zstd_dict=_ZSTD_DICT_5)
_FLUSH_FRAME = zstd.ZstdCompressor.FLUSH_FRAME

# (resource bytes, resource schema_url, scope bytes, scope schema_url, [span bytes])
ChunkGroup = tuple[bytes, str, bytes, str, Sequence[bytes]]


@dataclass
class TraceFigures:
    """What one chunk (or, summed, a whole session) holds of one trace. ``input_tokens``,
    ``output_tokens`` and ``cost`` are the model calls' usage; ``agg_*`` the largest usage an
    aggregating span carried (see :attr:`usage`)."""

    start_us: int
    end_us: int
    spans: int
    errors: int
    input_tokens: int
    output_tokens: int
    cost: float
    root_name: str
    agg_input_tokens: int = 0
    agg_output_tokens: int = 0
    agg_cost: float = 0.0

    def add(self, other: TraceFigures) -> None:
        self.start_us = min(self.start_us, other.start_us)
        self.end_us = max(self.end_us, other.end_us)
        self.spans += other.spans
        self.errors += other.errors
        self.input_tokens += other.input_tokens
        self.output_tokens += other.output_tokens
        self.cost += other.cost
        self.root_name = self.root_name or other.root_name
        mine, theirs = self.agg_input_tokens + self.agg_output_tokens, other.agg_input_tokens + other.agg_output_tokens
        if theirs > mine or (theirs == mine and other.agg_cost > self.agg_cost):  # as write_session.lua
            self.agg_input_tokens, self.agg_output_tokens = other.agg_input_tokens, other.agg_output_tokens
            self.agg_cost = other.agg_cost

    @property
    def usage(self) -> tuple[int, int, float]:
        """(input tokens, output tokens, cost USD) the trace counts: its model calls' usage,
        or, when none carried any, its largest aggregating span's."""
        if self.input_tokens or self.output_tokens or self.cost:
            return self.input_tokens, self.output_tokens, self.cost
        return self.agg_input_tokens, self.agg_output_tokens, self.agg_cost


def _varint(value: int) -> bytes:
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


_SMALL_VARINTS = [_varint(n) for n in range(1 << 14)]


def _field(tag: bytes, payload: bytes) -> bytes:
    """A length-delimited protobuf field: tag byte(s), varint length, payload."""
    n = len(payload)
    return tag + (_SMALL_VARINTS[n] if n < 16384 else _varint(n)) + payload


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


def chunk_content(groups: Sequence[ChunkGroup], trace_table: Sequence[bytes]) -> bytes:
    """What a chunk compresses: the trace table (packed trace entries), then the spans."""
    return _COUNT.pack(len(trace_table)) + b"".join(trace_table) + traces_data_fragment(groups)


def encode_chunk(groups: Sequence[ChunkGroup], span_count: int, trace_table: Sequence[bytes]) -> bytes:
    """A stored chunk (see the module docstring): ``trace_table`` holds packed trace entries."""
    data = chunk_content(groups, trace_table)
    return CHUNK_HEADER.pack(_FORMAT, span_count) + _COMPRESSOR.compress(data, _FLUSH_FRAME)


def trace_entry(trace_id: bytes, start: int, end: int, spans: int, errors: int, tin: float, tout: float,
                cost: float, root_name: str, agg_in: float = 0, agg_out: float = 0, agg_cost: float = 0.0) -> bytes:
    name = root_name.encode()[:255]
    return TRACE_ENTRY.pack(trace_id, start, end, spans, errors, int(tin), int(tout), cost, int(agg_in),
                            int(agg_out), agg_cost, len(name)) + name


def _inflate(chunk: bytes) -> tuple[int, bytes]:
    fmt, _count = CHUNK_HEADER.unpack_from(chunk)
    dictionary = _DICTIONARIES.get(fmt)
    if dictionary is None:
        raise ValueError(f"unknown chunk format {fmt}")
    return fmt, zstd.decompress(chunk[CHUNK_HEADER.size:], zstd_dict=dictionary)


def _layout(fmt: int) -> tuple[struct.Struct, struct.Struct]:
    return (_COUNT_3, _TRACE_ENTRY_3) if fmt == _FORMAT_3 else (_COUNT, TRACE_ENTRY)


def _split(fmt: int, data: bytes) -> tuple[memoryview, memoryview]:
    """(trace table, TracesData fragment) of an inflated chunk."""
    view = memoryview(data)
    count_struct, entry = _layout(fmt)
    (count,) = count_struct.unpack_from(data)
    offset = count_struct.size
    for _ in range(count):
        offset += entry.size + data[offset + entry.size - 1]
    return view[count_struct.size:offset], view[offset:]


def decode_chunks(chunks: Iterable[bytes]) -> bytes:
    """The protobuf encoding of one ``TracesData`` with the spans of every chunk."""
    return b"".join([_split(*_inflate(chunk))[1] for chunk in chunks])


def chunk_traces(chunks: Iterable[bytes]) -> dict[bytes, TraceFigures]:
    """Per-trace figures summed over ``chunks``."""
    out: dict[bytes, TraceFigures] = {}
    for chunk in chunks:
        fmt, data = _inflate(chunk)
        table = _split(fmt, data)[0]
        entry = _layout(fmt)[1]
        size = entry.size
        offset = 0
        while offset < len(table):
            values = entry.unpack_from(table, offset)
            n = values[-1]
            name = bytes(table[offset + size:offset + size + n]).decode(errors="replace")
            offset += size + n
            tid, start, end, spans, errors, tin, tout, cost = values[:8]
            figures = TraceFigures(start, end, spans, errors, tin, tout, cost, name, *values[8:-1])
            known = out.get(tid)
            if known is None:
                out[tid] = figures
            else:
                known.add(figures)
    return out


def dedupe_spans(data: TracesData) -> TracesData:
    """Drop repeated spans (same trace and span id) that partially retried writes stored twice."""
    seen: set[bytes] = set()
    duplicate = False
    for rs in data.resource_spans:
        for ss in rs.scope_spans:
            for span in ss.spans:
                key = span.trace_id + span.span_id
                if key in seen:
                    duplicate = True
                seen.add(key)
    if not duplicate:
        return data
    return drop_seen_spans(data, set()) or TracesData()


def drop_seen_spans(data: TracesData, seen: set[bytes]) -> TracesData | None:
    """``data`` without spans whose trace and span id are in ``seen``, and without repeats;
    adds the ids it keeps to ``seen``. None when no span is left."""
    out = TracesData()
    for rs in data.resource_spans:
        keep_rs = None
        for ss in rs.scope_spans:
            fresh = []
            for span in ss.spans:
                key = span.trace_id + span.span_id
                if key not in seen:
                    seen.add(key)
                    fresh.append(span)
            if fresh:
                if keep_rs is None:
                    keep_rs = out.resource_spans.add(resource=rs.resource, schema_url=rs.schema_url)
                keep_rs.scope_spans.add(scope=ss.scope, schema_url=ss.schema_url, spans=fresh)
    return out if out.resource_spans else None

