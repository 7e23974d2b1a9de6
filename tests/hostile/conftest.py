"""Known failures of the hostile suite, each with its cause, marked strict ``xfail``: the
assertions stay as they are (they state the right behaviour), the suite stays green, and a
case that starts passing fails as XPASS so its entry here is removed.

Every cause below lies in span grouping (``ingest/grouping.py``, ``ingest/groups.py``), the
chunk codec (``store/codec.py``), the store's Lua scripts or the Jaeger-compatible API's JSON
(``jaeger/``), not in the transports.
"""

from __future__ import annotations

import re

import pytest

_TOKENS_NOT_WHOLE = ("token figure not finite or outside int64 reaches int() / struct.pack in "
                     "store/codec.py trace_entry: the whole request fails with 500 / INTERNAL")
_TOKENS_NEGATIVE = "negative token counts are stored as sent (the session shows them)"
_COST_NAN = ("a NaN cost reaches the store's Lua script ('value is not a valid float'): the whole "
             "request fails with 500 / INTERNAL")
_COST_INFINITE = ("an infinite cost is stored and summed: REST shows null, and the Jaeger-compatible API writes "
                  "the span's tag as a bare Infinity (not JSON)")

#: test name pattern (re.fullmatch) -> why it fails today
KNOWN_FAILURES: dict[str, str] = {
    r"test_a_hostile_number\[(input|output)_tokens-(double-(nan|inf|neg-inf|1e30|2p63|neg-1e30)|int-max"
    r"|string-(nan|inf|neg-inf|1e30|2p63))-.*\]": _TOKENS_NOT_WHOLE,
    r"test_a_hostile_number\[(input|output)_tokens-(double-neg|int-neg|int-min|string-neg)-.*\]": _TOKENS_NEGATIVE,
    r"test_a_hostile_number\[cost-(double|string)-nan-.*\]": _COST_NAN,
    r"test_a_hostile_number\[cost-(double|string)-(inf|neg-inf)-.*\]": _COST_INFINITE,
    r"test_an_all_zero_parent_span_id_is_a_root\[.*\]":
        "grouping takes any non-empty parent span id as a parent: the all-zero one makes no root",
    r"test_seventy_thousand_traces_in_one_session\[.*\]":
        "store/codec.py packs a chunk's trace count as 'H' (at most 65535): struct.error, 500 / INTERNAL",
    r"test_any_request_gets_no_5xx_and_lookups_stay_readable":
        "the Jaeger-compatible API writes a span tag whose double is infinite as a bare Infinity (not JSON); "
        "behind it, the number failures above",
}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        for pattern, reason in KNOWN_FAILURES.items():
            if re.fullmatch(pattern, item.name):
                item.add_marker(pytest.mark.xfail(strict=True, reason=reason))
                break
