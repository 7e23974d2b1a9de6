"""OTLP ``AnyValue`` and key-value lists as plain JSON values (lookups' read side).

``opentelemetry.proto.common.v1.AnyValue`` becomes: ``string_value`` a str, ``bool_value`` a
bool, ``int_value`` an int, ``double_value`` a float (NaN and infinities as the strings
``"NaN"``, ``"Infinity"``, ``"-Infinity"``, which JSON cannot hold), ``bytes_value`` a base64
string, ``array_value`` a list, ``kvlist_value`` a dict (a repeated key keeps its first value),
an empty AnyValue ``None``. Nesting deeper than :data:`MAX_DEPTH` becomes ``None``.
"""

from __future__ import annotations

import base64
import math
from collections.abc import Iterable
from typing import Any

__all__ = ["any_value", "attributes_dict", "MAX_DEPTH"]

#: AnyValues nested deeper than this (arrays in arrays...) read as None.
MAX_DEPTH = 64


def any_value(value, depth: int = 0) -> Any:
    """One ``AnyValue`` as a JSON value (see the module docstring)."""
    kind = value.WhichOneof("value")
    if kind == "string_value":
        return value.string_value
    if kind == "int_value":
        return value.int_value
    if kind == "bool_value":
        return value.bool_value
    if kind == "double_value":
        number = value.double_value
        if math.isfinite(number):
            return number
        return "NaN" if math.isnan(number) else ("Infinity" if number > 0 else "-Infinity")
    if depth >= MAX_DEPTH:
        return None
    if kind == "array_value":
        return [any_value(v, depth + 1) for v in value.array_value.values]
    if kind == "kvlist_value":
        return attributes_dict(value.kvlist_value.values, depth + 1)
    if kind == "bytes_value":
        return base64.b64encode(value.bytes_value).decode()
    return None


def attributes_dict(pairs: Iterable, depth: int = 0) -> dict[str, Any]:
    """A repeated ``KeyValue`` as a dict (the first value of a repeated key wins, as the SDKs
    keep one value per key)."""
    out: dict[str, Any] = {}
    for kv in pairs:
        if kv.key not in out:
            out[kv.key] = any_value(kv.value, depth)
    return out
