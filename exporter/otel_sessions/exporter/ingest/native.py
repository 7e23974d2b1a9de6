"""Grouping from the request's bytes with the native span scanner, the pure-Python path as fallback.

The C extension ``_scan`` (``_scan.c``, built by ``pip install`` when a C compiler is at hand)
reads a serialized ``ExportTraceServiceRequest`` without building protobuf messages: per span
its bytes as received, ids, digest (``groups.span_digest``), name, kind, times, status code,
event bits and the winning value of each attribute slot of ``grouping.py``; :class:`NativeBatchBuilder` places them with the
same code as the pure-Python :class:`~.grouping.BatchBuilder`, so both give the same
:class:`~.groups.Batch` (``tests/ingest/test_native.py`` compares them).

The scanner answers only for requests in canonical encoding (what protobuf serializers
write: fields in number order, no zero values, minimal varints, strict UTF-8...), where a
span's bytes as received equal ``Span.SerializeToString()``. Any other request (malformed,
unknown fields, other field orders) goes to the pure-Python path: upb parses it, raising
``DecodeError`` when it is malformed, so what is refused, and why, does not change.

Selection, once per process (:func:`status`): native when the extension imports and its
schema matches the installed ``opentelemetry-proto`` messages, unless the environment sets
``OTEL_SESSIONS_NATIVE=0`` (an implementation switch like protobuf's own, read here only).
"""

from __future__ import annotations

import functools
import logging
import os

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from otel_sessions.exporter.ingest.grouping import BatchBuilder, scanner_tables
from otel_sessions.exporter.ingest.groups import Batch
from otel_sessions.exporter.ingest.pricing import PriceTable
from otel_sessions.exporter.metrics import METRICS
from otel_sessions.processor import attributes as attr

try:
    from otel_sessions.exporter.ingest import _scan
except ImportError as _exc:  # built without a C compiler, or another platform
    _scan = None
    _IMPORT_ERROR = str(_exc)

__all__ = ["NativeBatchBuilder", "batch_builder", "status", "scanner_problem", "descriptor_schema", "ENV"]

log = logging.getLogger(__name__)

#: ``OTEL_SESSIONS_NATIVE=0`` (or false, no, off) forces the pure-Python path.
ENV = "OTEL_SESSIONS_NATIVE"

_KINDS = {1: "double", 3: "int64", 5: "int32", 6: "fixed64", 7: "fixed32", 8: "bool", 9: "string",
          11: "message", 12: "bytes", 13: "uint32", 14: "int32"}  # FieldDescriptor.TYPE_*; enums are int32


def descriptor_schema() -> dict[str, dict[int, tuple[str, str, str | None]]]:
    """The installed ``opentelemetry-proto`` trace request messages in the shape of
    ``_scan.schema()``: full name -> {field number: (kind, label, message type or None)}."""
    out: dict[str, dict[int, tuple[str, str, str | None]]] = {}

    def visit(descriptor) -> None:
        if descriptor.full_name in out:
            return
        fields = out[descriptor.full_name] = {}
        for f in descriptor.fields:
            if f.is_repeated:
                label = "repeated"
            elif f.containing_oneof is not None:
                label = "oneof"
            else:
                label = "presence" if f.has_presence else "implicit"
            fields[f.number] = (_KINDS.get(f.type, f"type {f.type}"), label,
                                f.message_type.full_name if f.message_type else None)
        for f in descriptor.fields:
            if f.message_type is not None:
                visit(f.message_type)

    visit(ExportTraceServiceRequest.DESCRIPTOR)
    return out


@functools.cache
def scanner_problem() -> str | None:
    """None when the native scanner is usable (it is then configured from ``grouping.py``'s
    tables), else why not."""
    if _scan is None:
        if "cannot import name '_scan'" in _IMPORT_ERROR:  # pip built no extension
            return ("native scanner not built: no C compiler or Python headers when this was installed "
                    "(install gcc and python3-dev, then pip install again)")
        return f"native scanner cannot be loaded: {_IMPORT_ERROR}"
    if _scan.schema() != descriptor_schema():
        return "the native scanner does not know this opentelemetry-proto's messages"
    t = scanner_tables()
    _scan.configure(t["span_keys"], t["span_slots"], t["last_wins"], t["metadata_prefix"], t["resource_keys"],
                    t["resource_slots"], t["event_names"], t["other"])
    return None


@functools.cache
def status() -> tuple[bool, str]:
    """(native scanner selected, a phrase saying which path reads requests and why)."""
    value = os.environ.get(ENV, "").strip().lower()
    if value in ("0", "false", "no", "off"):
        return False, f"pure-Python path ({ENV}={os.environ[ENV]})"
    if value not in ("", "1", "true", "yes", "on"):
        log.warning("%s=%r is neither 0/false/no/off nor 1/true/yes/on: taken as on", ENV, os.environ[ENV][:32])
    problem = scanner_problem()
    if problem is not None:
        return False, f"pure-Python path ({problem})"
    return True, "native scanner"


class NativeBatchBuilder(BatchBuilder):
    """A :class:`BatchBuilder` whose :meth:`build_bytes` reads with the native scanner
    (RuntimeError where :func:`scanner_problem` says it is not usable)."""

    native = True

    def __init__(self, prices: PriceTable | None = None, max_id_length: int = attr.MAX_ID_LENGTH) -> None:
        problem = scanner_problem()
        if problem is not None:
            raise RuntimeError(problem)
        super().__init__(prices, max_id_length)

    def build_bytes(self, body: bytes, force_session: str | None = None) -> Batch:
        """Group a serialized ``ExportTraceServiceRequest`` (or ``TracesData``).

        Raises ``google.protobuf.message.DecodeError`` when it does not parse."""
        scanned = _scan.scan(body)
        if type(scanned) is str:  # not canonical, or malformed: upb decides
            batch = super().build_bytes(body, force_session)
            METRICS.native_fallbacks.inc()
            log.debug("request grouped by the pure-Python path: %s", scanned)
            return batch
        batch = Batch()
        place = self._place
        for resource_bytes, schema_url, resource_values, scopes in scanned:
            labels, operations = self._resource_from_slots(batch, resource_values)
            for scope_bytes, scope_schema_url, spans in scopes:
                key = (resource_bytes, schema_url, scope_bytes, scope_schema_url)
                for (span, trace_id, span_id, name, root, start, end, code, events, found, metadata, kind,
                     digest) in spans:
                    place(batch, key, labels, force_session, span, trace_id, span_id, name, root, start, end,
                          code, events, found, metadata, digest)
                    operations.add((kind, name))
        return batch


def batch_builder(prices: PriceTable | None = None, max_id_length: int = attr.MAX_ID_LENGTH) -> BatchBuilder:
    """The builder :func:`status` selects: native when usable, else the pure-Python one."""
    cls = NativeBatchBuilder if status()[0] else BatchBuilder
    return cls(prices, max_id_length=max_id_length)
