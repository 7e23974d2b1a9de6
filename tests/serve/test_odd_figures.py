"""Lookups answer for any figure a summary holds: REST as strict JSON, gRPC within the
fields' ranges (the store should never hold such figures; a lookup still must not fail)."""

from __future__ import annotations

import json
import math

from otel_sessions.exporter.serve.grpc_service import session_to_proto
from otel_sessions.exporter.serve.rest import _dumps
from otel_sessions.exporter.store.summary import SessionSummary, TraceSummary


def _odd_summary() -> SessionSummary:
    far = (2 ** 64 - 1) / 1000  # the largest span time, in microseconds
    return SessionSummary(
        id="s", name=None, user_id=None, thread_id=None, previous_id=None, status="active", start_us=far,
        end_us=far, last_seen_ms=math.inf, trace_count=1, span_count=1, error_count=0, input_tokens=-5,
        output_tokens=2 ** 70, cost_usd=math.nan, cost_estimated=False,
        traces=[TraceSummary("00" * 16, "", far, math.inf, 1, 0, -(2 ** 63), 2 ** 64, math.inf)])


def test_grpc_fields_take_any_figure():
    message = session_to_proto(_odd_summary())
    assert message.start_time_unix_nano == message.end_time_unix_nano == 2 ** 64 - 1
    assert message.last_activity_unix_nano == 2 ** 64 - 1
    assert (message.input_tokens, message.output_tokens) == (0, 2 ** 64 - 1)
    assert math.isnan(message.cost_usd)
    trace = message.traces[0]
    assert (trace.end_time_unix_nano, trace.input_tokens, trace.output_tokens) == (2 ** 64 - 1, 0, 2 ** 64 - 1)


def test_rest_json_is_strict():
    text = _dumps({"cost_usd": math.nan, "list": [math.inf, 1.5, {"x": -math.inf}], "n": 3})
    assert json.loads(text, parse_constant=lambda name: 1 / 0) == {"cost_usd": None, "list": [None, 1.5, {"x": None}],
                                                                  "n": 3}
    assert _dumps({"a": 1.0}) == '{"a": 1.0}'
