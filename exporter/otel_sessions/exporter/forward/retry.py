"""The OTLP retry policy of forwarding: what one export try came to, and when to try again.

Pure functions, no network and no clock of their own. The rules follow the OTLP
specification (protocol/exporter.md, "Retry"):

* gRPC: ``CANCELLED``, ``DEADLINE_EXCEEDED``, ``ABORTED``, ``OUT_OF_RANGE``, ``UNAVAILABLE``,
  ``DATA_LOSS`` are retried, and ``RESOURCE_EXHAUSTED`` only when the status carries a
  ``google.rpc.RetryInfo``; the ``RetryInfo`` delay is honoured (:func:`grpc_outcome`).
* HTTP: 429, 502, 503 and 504 are retried, honouring ``Retry-After`` (seconds or a date)
  (:func:`http_outcome`); connection errors and timeouts are retried too
  (:func:`transport_error_outcome`).
* Anything else is permanent: the batch is dropped and counted (``reason="rejected"``).

Between tries the worker waits with exponential backoff (0.5 s doubling to 5 s, ±20 % jitter,
:func:`backoff_delay`) unless the server named a delay.
"""

from __future__ import annotations

import email.utils
import random
import time
from collections.abc import Callable
from dataclasses import dataclass

import grpc
from google.protobuf.message import DecodeError
from google.rpc import error_details_pb2, status_pb2

__all__ = [
    "Outcome", "RETRYABLE_GRPC_CODES", "RETRYABLE_HTTP_STATUSES", "BACKOFF_INITIAL_S", "BACKOFF_MAX_S",
    "grpc_outcome", "http_outcome", "transport_error_outcome", "retry_info_delay", "retry_after_seconds",
    "backoff_delay",
]

#: gRPC codes the OTLP specification marks retryable (RESOURCE_EXHAUSTED only with RetryInfo).
RETRYABLE_GRPC_CODES = frozenset({
    grpc.StatusCode.CANCELLED,
    grpc.StatusCode.DEADLINE_EXCEEDED,
    grpc.StatusCode.ABORTED,
    grpc.StatusCode.OUT_OF_RANGE,
    grpc.StatusCode.UNAVAILABLE,
    grpc.StatusCode.DATA_LOSS,
})
#: HTTP statuses the OTLP specification marks retryable.
RETRYABLE_HTTP_STATUSES = frozenset({429, 502, 503, 504})

BACKOFF_INITIAL_S = 0.5
BACKOFF_MAX_S = 5.0


@dataclass
class Outcome:
    """What one export try came to.

    ``ok``: the destination took the request (``rejected_spans`` of it refused as partial
    success); else ``retryable`` says whether to try again, after ``retry_after`` seconds when
    the server named a delay."""

    ok: bool
    retryable: bool = False
    retry_after: float | None = None
    rejected_spans: int = 0
    message: str = ""


def grpc_outcome(code: grpc.StatusCode, status_details: bytes | None, message: str) -> Outcome:
    """A failed gRPC export: ``status_details`` is the ``grpc-status-details-bin`` trailer."""
    delay = retry_info_delay(status_details)
    retryable = code in RETRYABLE_GRPC_CODES or (code == grpc.StatusCode.RESOURCE_EXHAUSTED and delay is not None)
    return Outcome(ok=False, retryable=retryable, retry_after=delay, message=f"{code.name}: {message}")


def http_outcome(status: int, retry_after: str | None, message: str) -> Outcome:
    """A non-2xx HTTP export: ``retry_after`` is the ``Retry-After`` header, if any."""
    retryable = status in RETRYABLE_HTTP_STATUSES
    delay = retry_after_seconds(retry_after) if retryable else None
    return Outcome(ok=False, retryable=retryable, retry_after=delay, message=f"HTTP {status}: {message}")


def transport_error_outcome(exc: BaseException) -> Outcome:
    """An export that got no answer (connection error, timeout): always retried."""
    return Outcome(ok=False, retryable=True, message=f"{type(exc).__name__}: {exc}")


def retry_info_delay(status_details: bytes | None) -> float | None:
    """The delay of a ``google.rpc.RetryInfo`` in a serialized ``google.rpc.Status``, if any."""
    if not status_details:
        return None
    try:
        status = status_pb2.Status.FromString(status_details)
    except DecodeError:
        return None
    for detail in status.details:
        if detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
            info = error_details_pb2.RetryInfo()
            detail.Unpack(info)
            return info.retry_delay.seconds + info.retry_delay.nanos / 1e9
    return None


def retry_after_seconds(value: str | None, now: float | None = None) -> float | None:
    """``Retry-After`` as seconds: a number of seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def backoff_delay(attempt: int, initial_s: float = BACKOFF_INITIAL_S, max_s: float = BACKOFF_MAX_S,
                  uniform: Callable[[float, float], float] | None = None) -> float:
    """The wait after failed try ``attempt`` (0 for the first) when the server named no delay:
    ``initial_s`` doubling up to ``max_s``, times a jitter factor ``uniform(0.8, 1.2)``
    (:func:`random.uniform` unless given)."""
    return min(max_s, initial_s * 2 ** attempt) * (uniform or random.uniform)(0.8, 1.2)
