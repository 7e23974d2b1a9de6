"""The OTLP retry policy (protocol/exporter.md, "Retry") as pure functions: no network."""

from __future__ import annotations

import asyncio
import email.utils

import grpc
import pytest
from google.protobuf.duration_pb2 import Duration
from google.rpc import error_details_pb2, status_pb2

from otel_sessions.exporter.forward.retry import (
    BACKOFF_INITIAL_S,
    BACKOFF_MAX_S,
    backoff_delay,
    grpc_outcome,
    http_outcome,
    retry_after_seconds,
    retry_info_delay,
    transport_error_outcome,
)

SPEC_RETRYABLE_GRPC = {"CANCELLED", "DEADLINE_EXCEEDED", "ABORTED", "OUT_OF_RANGE", "UNAVAILABLE", "DATA_LOSS"}
FAILED_CODES = [code for code in grpc.StatusCode if code != grpc.StatusCode.OK]


def _status_details(*details) -> bytes:
    """A serialized ``google.rpc.Status`` carrying ``details``, as in ``grpc-status-details-bin``."""
    status = status_pb2.Status(code=grpc.StatusCode.RESOURCE_EXHAUSTED.value[0], message="slow down")
    for detail in details:
        status.details.add().Pack(detail)
    return status.SerializeToString()


def _retry_info(seconds: int, nanos: int = 0) -> error_details_pb2.RetryInfo:
    return error_details_pb2.RetryInfo(retry_delay=Duration(seconds=seconds, nanos=nanos))


# --- gRPC ----------------------------------------------------------------------------------
@pytest.mark.parametrize("code", FAILED_CODES, ids=lambda code: code.name)
def test_grpc_codes_the_spec_marks_retryable_are_retried_and_no_other(code):
    outcome = grpc_outcome(code, None, "details")
    assert not outcome.ok
    assert outcome.retryable == (code.name in SPEC_RETRYABLE_GRPC)
    assert outcome.retry_after is None
    assert outcome.message == f"{code.name}: details"


def test_resource_exhausted_is_retried_only_with_retry_info():
    exhausted = grpc.StatusCode.RESOURCE_EXHAUSTED
    assert not grpc_outcome(exhausted, None, "quota").retryable
    assert not grpc_outcome(exhausted, _status_details(error_details_pb2.DebugInfo(detail="x")), "quota").retryable

    outcome = grpc_outcome(exhausted, _status_details(_retry_info(2, 500_000_000)), "quota")
    assert outcome.retryable and outcome.retry_after == 2.5


def test_a_retry_info_delay_is_honoured_on_any_retryable_code():
    outcome = grpc_outcome(grpc.StatusCode.UNAVAILABLE, _status_details(_retry_info(0, 250_000_000)), "down")
    assert outcome.retryable and outcome.retry_after == 0.25


def test_retry_info_delay_reads_a_status_and_ignores_anything_else():
    assert retry_info_delay(_status_details(_retry_info(3))) == 3.0
    debug = error_details_pb2.DebugInfo(detail="x")
    assert retry_info_delay(_status_details(debug, _retry_info(1, 1_000_000))) == 1.001  # not the first detail
    assert retry_info_delay(_status_details(debug)) is None
    assert retry_info_delay(_status_details()) is None
    assert retry_info_delay(None) is None
    assert retry_info_delay(b"") is None
    assert retry_info_delay(b"\xff\xff\xff") is None  # not a Status


# --- HTTP ----------------------------------------------------------------------------------
@pytest.mark.parametrize("status", [429, 502, 503, 504])
def test_http_statuses_the_spec_marks_retryable_are_retried_honouring_retry_after(status):
    assert http_outcome(status, None, "busy").retryable
    assert http_outcome(status, None, "busy").retry_after is None
    outcome = http_outcome(status, "7", "busy")
    assert not outcome.ok and outcome.retryable and outcome.retry_after == 7.0
    assert outcome.message == f"HTTP {status}: busy"


@pytest.mark.parametrize("status", [300, 400, 401, 403, 404, 405, 408, 413, 415, 500, 501, 505])
def test_other_http_statuses_are_permanent(status):
    outcome = http_outcome(status, "7", "no")
    assert not outcome.ok and not outcome.retryable
    assert outcome.retry_after is None  # Retry-After means nothing on a permanent error


def test_connection_errors_and_timeouts_are_retried():
    for exc in (asyncio.TimeoutError(), ConnectionRefusedError("refused"), OSError("unreachable")):
        outcome = transport_error_outcome(exc)
        assert not outcome.ok and outcome.retryable and outcome.retry_after is None
        assert outcome.message.startswith(type(exc).__name__ + ":")


def test_retry_after_in_seconds_or_as_an_http_date():
    now = 1_700_000_000.0
    assert retry_after_seconds("120") == 120.0
    assert retry_after_seconds(" 3 ") == 3.0
    assert retry_after_seconds("0") == 0.0
    assert retry_after_seconds(email.utils.formatdate(now + 30, usegmt=True), now=now) == 30.0
    assert retry_after_seconds(email.utils.formatdate(now - 30, usegmt=True), now=now) == 0.0  # already past
    for unusable in (None, "", "soon", "-5", "1.5"):
        assert retry_after_seconds(unusable) is None


# --- backoff -------------------------------------------------------------------------------
def test_backoff_doubles_from_half_a_second_up_to_five():
    assert (BACKOFF_INITIAL_S, BACKOFF_MAX_S) == (0.5, 5.0)
    middle = [backoff_delay(attempt, uniform=lambda low, high: 1.0) for attempt in range(7)]
    assert middle == [0.5, 1.0, 2.0, 4.0, 5.0, 5.0, 5.0]
    assert backoff_delay(0, 0.01, 0.03, uniform=lambda low, high: 1.0) == 0.01
    assert backoff_delay(5, 0.01, 0.03, uniform=lambda low, high: 1.0) == 0.03


def test_backoff_jitter_is_twenty_percent_either_way():
    bounds = []
    backoff_delay(3, uniform=lambda low, high: bounds.append((low, high)) or 1.0)
    assert bounds == [(0.8, 1.2)]
    assert backoff_delay(1, uniform=lambda low, high: low) == pytest.approx(0.8)
    assert backoff_delay(9, uniform=lambda low, high: high) == pytest.approx(6.0)
    delays = [backoff_delay(2) for _ in range(500)]  # the default: random.uniform
    assert all(1.6 <= d <= 2.4 for d in delays)
    assert len(set(delays)) > 1
