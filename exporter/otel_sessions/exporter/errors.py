"""The one error table: every failure a request can meet, as gRPC code, HTTP status and retry rule.

Each transport (OTLP/gRPC, OTLP/HTTP, REST, the SessionService, the Jaeger API) raises these
exceptions and answers through one of the two adapters at the bottom, so a status is decided
in one place. The retry column follows the OTLP specification (protocol/otlp.md, "Failures"):
``UNAVAILABLE`` / 503 and ``RESOURCE_EXHAUSTED`` with retry information / 429 are retryable,
the rest are not.

==========================  ======================  ====  =========  ===========
exception                   gRPC code               HTTP  retryable  Retry-After
==========================  ======================  ====  =========  ===========
:class:`BadRequest`         ``INVALID_ARGUMENT``    400   no
:class:`Unauthenticated`    ``UNAUTHENTICATED``     401   no
:class:`PermissionDenied`   ``PERMISSION_DENIED``   403   no
:class:`NotFound`           ``NOT_FOUND``           404   no
:class:`RequestTimeout`     ``DEADLINE_EXCEEDED``   408   no
:class:`TooLarge`           ``RESOURCE_EXHAUSTED``  413   no
:class:`UnsupportedMedia`   ``INVALID_ARGUMENT``    415   no
:class:`Throttled`          ``RESOURCE_EXHAUSTED``  429   yes        the delay
:class:`QuotaExceeded`      ``RESOURCE_EXHAUSTED``  429   yes        the delay
:class:`Overloaded`         ``UNAVAILABLE``         503   yes        2 s
:class:`StoreUnavailable`   ``UNAVAILABLE``         503   yes        2 s
anything else (a bug)       ``INTERNAL``            500   no
==========================  ======================  ====  =========  ===========

Messages are written for the client: they never carry Redis commands, keys or tokens. A bug
is logged with its traceback and answered with a fixed message.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass

import grpc
from aiohttp import web

__all__ = [
    "ServiceError", "BadRequest", "Unauthenticated", "PermissionDenied", "NotFound", "RequestTimeout", "TooLarge",
    "UnsupportedMedia", "Throttled", "QuotaExceeded", "Overloaded", "StoreUnavailable", "ErrorKind", "classify",
    "http_error", "grpc_abort", "RETRY_AFTER_S",
]

log = logging.getLogger(__name__)

#: Seconds a client is asked to wait before retrying after a passing condition.
RETRY_AFTER_S = 2


@dataclass(frozen=True)
class ErrorKind:
    """How one kind of failure is answered."""

    grpc_code: grpc.StatusCode
    http_status: int
    retryable: bool
    outcome: str  # the ``outcome`` label of the request metrics


class ServiceError(Exception):
    """Base of the failures the error table knows. ``str(exc)`` is the client-facing message."""

    kind: ErrorKind
    #: seconds to wait before a retry (``Retry-After`` / ``google.rpc.RetryInfo``), when retryable
    retry_after_s: float | None = None


class BadRequest(ServiceError):
    """The request or a parameter is malformed. ``parameter`` names it when there is one."""

    kind = ErrorKind(grpc.StatusCode.INVALID_ARGUMENT, 400, False, "invalid")

    def __init__(self, message: str, parameter: str | None = None) -> None:
        self.parameter = parameter
        super().__init__(f"{parameter}: {message}" if parameter else message)


class Unauthenticated(ServiceError):
    """No bearer token, or not a known one."""

    kind = ErrorKind(grpc.StatusCode.UNAUTHENTICATED, 401, False, "unauthenticated")


class PermissionDenied(ServiceError):
    """A known token without the scope the route needs."""

    kind = ErrorKind(grpc.StatusCode.PERMISSION_DENIED, 403, False, "forbidden")


class NotFound(ServiceError):
    """No such session, thread, user, trace or span."""

    kind = ErrorKind(grpc.StatusCode.NOT_FOUND, 404, False, "not_found")


class RequestTimeout(ServiceError):
    """The client did not send its request body within ``--body-timeout`` (a stalled or
    trickling client); the connection is closed after the answer. Not retryable for OTLP
    exporters (408 is not among OTLP/HTTP's retryable statuses): a client this slow would
    only time out again."""

    kind = ErrorKind(grpc.StatusCode.DEADLINE_EXCEEDED, 408, False, "timeout")


class TooLarge(ServiceError):
    """The request (compressed or decompressed) is over ``--max-request-bytes``."""

    kind = ErrorKind(grpc.StatusCode.RESOURCE_EXHAUSTED, 413, False, "too_large")


class UnsupportedMedia(ServiceError):
    """A content type or content encoding the receiver does not read."""

    kind = ErrorKind(grpc.StatusCode.INVALID_ARGUMENT, 415, False, "unsupported")


class Throttled(ServiceError):
    """A rate or quota is exceeded for now; retry after ``retry_after_s``."""

    kind = ErrorKind(grpc.StatusCode.RESOURCE_EXHAUSTED, 429, True, "throttled")

    def __init__(self, message: str, retry_after_s: float = RETRY_AFTER_S) -> None:
        self.retry_after_s = retry_after_s
        super().__init__(message)


class QuotaExceeded(Throttled):
    """A tenant's quota (``--tenants``) is used up for now; ``quota`` names it
    (``spans_per_second``, ``log_records_per_second``, ``max_sessions``). The whole request is
    refused; retry after ``retry_after_s`` (gRPC: ``google.rpc.RetryInfo``, HTTP: ``Retry-After``)."""

    def __init__(self, message: str, retry_after_s: float, quota: str) -> None:
        self.quota = quota
        super().__init__(message, retry_after_s)


class Overloaded(ServiceError):
    """Too many bytes in flight across all requests; retry shortly."""

    kind = ErrorKind(grpc.StatusCode.UNAVAILABLE, 503, True, "overloaded")
    retry_after_s = RETRY_AFTER_S


class StoreUnavailable(ServiceError):
    """Redis cannot take the write or answer the read now (down, timing out, out of memory,
    loading, read-only, failing over); the caller should retry later."""

    kind = ErrorKind(grpc.StatusCode.UNAVAILABLE, 503, True, "unavailable")
    retry_after_s = RETRY_AFTER_S


_INTERNAL = ErrorKind(grpc.StatusCode.INTERNAL, 500, False, "internal")
_INTERNAL_MESSAGE = "internal error (logged by the service)"


def classify(exc: BaseException) -> ErrorKind:
    """The row of the table for ``exc``; anything not a :class:`ServiceError` is a bug (500)."""
    return exc.kind if isinstance(exc, ServiceError) else _INTERNAL


def public_message(exc: BaseException, where: str) -> str:
    """What the client reads about ``exc``; a bug is logged here, with its traceback."""
    if isinstance(exc, ServiceError):
        return str(exc)
    log.error("%s failed", where, exc_info=exc)
    return _INTERNAL_MESSAGE


#: Renders an error body: (HTTP status, gRPC code, message, exception) -> response.
HttpRender = Callable[[int, grpc.StatusCode, str, BaseException], web.Response]


def _json_render(status: int, _code: grpc.StatusCode, message: str, exc: BaseException) -> web.Response:
    body = {"error": message}
    parameter = getattr(exc, "parameter", None)
    if parameter:
        body["parameter"] = parameter
    return web.json_response(body, status=status)


def http_error(exc: BaseException, where: str, render: HttpRender = _json_render) -> web.Response:
    """The aiohttp answer to ``exc``: status from the table, body from ``render`` (JSON
    ``{"error", "parameter"}`` by default), ``Retry-After`` and ``WWW-Authenticate`` headers."""
    kind = classify(exc)
    response = render(kind.http_status, kind.grpc_code, public_message(exc, where), exc)
    retry_after = getattr(exc, "retry_after_s", None) if kind.retryable else None
    if retry_after is not None:
        response.headers["Retry-After"] = str(max(1, math.ceil(retry_after)))
    if isinstance(exc, Unauthenticated):
        response.headers["WWW-Authenticate"] = "Bearer"
    return response


async def grpc_abort(context: grpc.aio.ServicerContext, exc: BaseException, where: str) -> None:
    """End the call with the table's code for ``exc`` (raises, as ``context.abort`` does).

    A retryable error with a delay carries ``google.rpc.RetryInfo`` in the status details
    (``grpc-status-details-bin``, read by the Collector's and the Go SDK's exporters) and
    again alone in ``google.rpc.retryinfo-bin`` (the one trailer the Python exporter reads)."""
    kind = classify(exc)
    message = public_message(exc, where)
    retry_after = getattr(exc, "retry_after_s", None) if kind.retryable else None
    if retry_after is not None:
        from google.protobuf.duration_pb2 import Duration
        from google.rpc import error_details_pb2, status_pb2

        info = error_details_pb2.RetryInfo(retry_delay=Duration(seconds=int(retry_after),
                                                                nanos=int((retry_after % 1) * 1e9)))
        status = status_pb2.Status(code=kind.grpc_code.value[0], message=message)
        status.details.add().Pack(info)
        await context.abort(kind.grpc_code, message,
                            trailing_metadata=(("grpc-status-details-bin", status.SerializeToString()),
                                               ("google.rpc.retryinfo-bin", info.SerializeToString())))
    await context.abort(kind.grpc_code, message)
