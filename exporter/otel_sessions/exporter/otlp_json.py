"""OTLP/JSON <-> protobuf, with the OTLP JSON rules the protobuf JSON mapping lacks.

OTLP/JSON (opentelemetry-specification, "OTLP/HTTP JSON Protobuf Encoding") differs from the
standard protobuf JSON mapping in one place: trace and span ids are hex strings, not base64.
Everything else (lowerCamelCase names, integer enums, int64 as strings or numbers, unknown
fields ignored) is the standard mapping, which ``google.protobuf.json_format`` implements.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from google.protobuf import json_format
from google.protobuf.message import Message

__all__ = ["parse_traces_json", "message_to_json", "OtlpJsonError"]

_ID_FIELDS = ("traceId", "spanId", "parentSpanId")


class OtlpJsonError(ValueError):
    """The body is not valid OTLP/JSON; the message says where."""


def _hex_to_b64(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise OtlpJsonError(f"{where}: ids must be hex strings")
    try:
        return base64.b64encode(bytes.fromhex(value)).decode()
    except ValueError:
        raise OtlpJsonError(f"{where}: {value[:64]!r} is not a hex id") from None


def _fix_ids(obj: dict, where: str) -> None:
    for name in _ID_FIELDS:
        if name in obj and obj[name] not in (None, ""):
            obj[name] = _hex_to_b64(obj[name], f"{where}.{name}")


def parse_traces_json(body: bytes, message: Message) -> Message:
    """Parse an OTLP/JSON ``ExportTraceServiceRequest`` (or ``TracesData``) into ``message``."""
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise OtlpJsonError(f"invalid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise OtlpJsonError("the body must be a JSON object")
    resource_spans = data.get("resourceSpans", data.get("resource_spans", []))
    if not isinstance(resource_spans, list):
        raise OtlpJsonError("resourceSpans must be an array")
    for i, rs in enumerate(resource_spans):
        if not isinstance(rs, dict):
            raise OtlpJsonError(f"resourceSpans[{i}] must be an object")
        for j, ss in enumerate(rs.get("scopeSpans", rs.get("scope_spans", [])) or []):
            if not isinstance(ss, dict):
                raise OtlpJsonError(f"resourceSpans[{i}].scopeSpans[{j}] must be an object")
            for k, span in enumerate(ss.get("spans", []) or []):
                if not isinstance(span, dict):
                    raise OtlpJsonError(f"resourceSpans[{i}].scopeSpans[{j}].spans[{k}] must be an object")
                where = f"resourceSpans[{i}].scopeSpans[{j}].spans[{k}]"
                _fix_ids(span, where)
                for n, link in enumerate(span.get("links", []) or []):
                    if isinstance(link, dict):
                        _fix_ids(link, f"{where}.links[{n}]")
    try:
        return json_format.ParseDict(data, message, ignore_unknown_fields=True)
    except (json_format.ParseError, binascii.Error, TypeError, ValueError) as exc:
        raise OtlpJsonError(str(exc)) from None


def _ids_to_hex(obj: Any) -> None:
    if isinstance(obj, dict):
        for key, value in obj.items():
            if key in _ID_FIELDS and isinstance(value, str):
                obj[key] = base64.b64decode(value).hex()
            else:
                _ids_to_hex(value)
    elif isinstance(obj, list):
        for item in obj:
            _ids_to_hex(item)


def message_to_dict(message: Message) -> dict:
    """A protobuf message as an OTLP/JSON object (hex ids, integer enums, lowerCamelCase)."""
    data = json_format.MessageToDict(message, use_integers_for_enums=True)
    _ids_to_hex(data)
    return data


def message_to_json(message: Message) -> bytes:
    return json.dumps(message_to_dict(message), separators=(",", ":")).encode()
