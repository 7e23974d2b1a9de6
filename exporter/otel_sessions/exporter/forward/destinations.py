"""Forward destinations: one per ``--forward`` URL, each a bounded queue and a worker.

A :class:`Destination` queues items (counted in spans, ``--forward-queue``); an item that does
not fit is dropped and counted (``reason="queue_full"``). Spans the join wait holds count
toward the bound from the time they are held (:meth:`Destination.reserve`). Its worker sends
the oldest item, trying again as the retry policy (:mod:`.retry`) says: it waits the delay the server named,
else with exponential backoff, and gives a batch up after ``--forward-retry-max``
(``reason="retries_exhausted"``); a permanent error drops it (``reason="rejected"``). While a
destination is down its worker retries the oldest batch and the queue fills up to its bound.
:meth:`Destination.stop` drains: the worker goes on sending until the queue is empty or the
deadline passes; what is left is dropped and counted (``reason="shutdown"``).

The transports are subclasses implementing :meth:`Destination._open`, :meth:`Destination._close`
and :meth:`Destination._export` (one try, answered with an :class:`~.retry.Outcome`): the stock
OTLP wire format, gRPC ``TraceService/Export`` with protobuf (:class:`GrpcDestination`) or
HTTP ``POST /v1/traces`` with ``application/x-protobuf`` (:class:`HttpDestination`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque

import aiohttp
import grpc
from google.protobuf.message import DecodeError
from google.rpc import status_pb2
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

from otel_sessions.exporter.forward.enrichment import Item, SessionInfo
from otel_sessions.exporter.forward.metrics import FORWARD_METRICS
from otel_sessions.exporter.forward.retry import (
    BACKOFF_INITIAL_S,
    BACKOFF_MAX_S,
    Outcome,
    backoff_delay,
    grpc_outcome,
    http_outcome,
    transport_error_outcome,
)

__all__ = ["Destination", "GrpcDestination", "HttpDestination", "EXPORT_METHOD"]

log = logging.getLogger(__name__)

EXPORT_METHOD = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"

_STATUS_DETAILS_KEY = "grpc-status-details-bin"


class Destination:
    """One ``--forward`` URL: a bounded queue (in spans) and a worker that sends with retries."""

    def __init__(self, url: str, *, max_queued_spans: int, retry_max_s: float, timeout_s: float,
                 sessions: SessionInfo, backoff_initial_s: float = BACKOFF_INITIAL_S,
                 backoff_max_s: float = BACKOFF_MAX_S) -> None:
        self.url = url
        self.max_queued_spans = max_queued_spans
        self.retry_max_s = retry_max_s
        self.timeout_s = timeout_s
        self.backoff_initial_s = backoff_initial_s
        self.backoff_max_s = backoff_max_s
        self.sessions = sessions
        self.queued_spans = 0  # queued, being sent, and reserved (held by the join wait)
        self._reserved = 0
        self._queue: deque[Item] = deque()
        self._ready = asyncio.Event()
        self._wake = asyncio.Event()
        self._task: asyncio.Task | None = None
        self._stop_at: float | None = None
        self._sent = FORWARD_METRICS.sent.labels(url)
        self._retries = FORWARD_METRICS.retries.labels(url)
        self._gauge = FORWARD_METRICS.queued.labels(url)

    @staticmethod
    def create(url: str, **options) -> Destination:
        if url.startswith("grpc://"):
            return GrpcDestination(url, **options)
        return HttpDestination(url, **options)

    def _drop(self, spans: int, reason: str) -> None:
        if spans:
            FORWARD_METRICS.dropped.labels(self.url, reason).inc(spans)

    def reserve(self, spans: int) -> bool:
        """Count ``spans`` spans held elsewhere (the join wait) toward the bound until they are
        offered with ``reserved=True``; False, the spans dropped and counted, when they do not fit."""
        if self._stop_at is not None or self.queued_spans + spans > self.max_queued_spans:
            self._drop(spans, "shutdown" if self._stop_at is not None else "queue_full")
            return False
        self.queued_spans += spans
        self._reserved += spans
        self._gauge.set(self.queued_spans)
        return True

    def offer(self, item: Item, reserved: bool = False) -> bool:
        """Queue ``item`` unless it would exceed the bound (then it is dropped and counted).
        ``reserved``: its spans were reserved (:meth:`reserve`): they fit, they are counted already."""
        if reserved:
            taken = min(self._reserved, item.span_count)  # stop() gave every reservation back
            self._reserved -= taken
            if self._stop_at is not None:
                self.queued_spans -= taken
                self._gauge.set(self.queued_spans)
                self._drop(item.span_count, "shutdown")
                return False
        elif self._stop_at is not None or self.queued_spans + item.span_count > self.max_queued_spans:
            self._drop(item.span_count, "shutdown" if self._stop_at is not None else "queue_full")
            return False
        else:
            self.queued_spans += item.span_count
            self._gauge.set(self.queued_spans)
        self._queue.append(item)
        self._ready.set()
        return True

    async def start(self) -> None:
        await self._open()
        self._task = asyncio.create_task(self._run(), name=f"forward {self.url}")

    async def stop(self, deadline: float) -> None:
        """Send what is queued until ``deadline`` (loop time), then drop the rest and close."""
        loop = asyncio.get_running_loop()
        self._stop_at = deadline
        self._ready.set()
        self._wake.set()
        if self._task is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self._task), max(0.0, deadline - loop.time()))
            except asyncio.TimeoutError:
                self._task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await self._task
        while self._queue:
            self._drop(self._queue.popleft().span_count, "shutdown")
        self.queued_spans = self._reserved = 0
        self._gauge.set(0)
        await self._close()

    async def _run(self) -> None:
        while True:
            if not self._queue:
                if self._stop_at is not None:
                    return
                self._ready.clear()
                await self._ready.wait()
                continue
            item = self._queue[0]
            try:
                await self._deliver(item)
            except asyncio.CancelledError:
                raise
            except Exception:  # a bug here must not kill the worker
                log.exception("forwarding to %s failed", self.url)
                self._drop(item.span_count, "rejected")
            self._queue.popleft()
            self.queued_spans -= item.span_count
            self._gauge.set(self.queued_spans)

    async def _deliver(self, item: Item) -> None:
        loop = asyncio.get_running_loop()
        payload = await item.payload(self.sessions)
        give_up = loop.time() + self.retry_max_s
        attempt = 0
        while True:
            deadline = give_up if self._stop_at is None else min(give_up, self._stop_at)
            timeout = max(0.05, min(self.timeout_s, deadline - loop.time()))
            outcome = await self._export(payload, timeout)
            if outcome.ok:
                self._sent.inc(item.span_count - outcome.rejected_spans)
                if outcome.rejected_spans:
                    self._drop(outcome.rejected_spans, "rejected")
                    log.warning("forwarding to %s: %d spans rejected: %s", self.url, outcome.rejected_spans,
                                outcome.message)
                return
            if not outcome.retryable:
                log.warning("forwarding to %s: batch of %d spans rejected: %s", self.url, item.span_count,
                            outcome.message)
                self._drop(item.span_count, "rejected")
                return
            delay = outcome.retry_after
            if delay is None:
                delay = backoff_delay(attempt, self.backoff_initial_s, self.backoff_max_s)
            attempt += 1
            deadline = give_up if self._stop_at is None else min(give_up, self._stop_at)
            if loop.time() + delay > deadline:
                reason = "retries_exhausted" if self._stop_at is None else "shutdown"
                log.warning("forwarding to %s: giving up a batch of %d spans (%s): %s", self.url,
                            item.span_count, reason, outcome.message)
                self._drop(item.span_count, reason)
                return
            self._retries.inc()
            log.debug("forwarding to %s: retry in %.2fs: %s", self.url, delay, outcome.message)
            if self._stop_at is None:
                self._wake.clear()
                with contextlib.suppress(asyncio.TimeoutError):  # stop() wakes it: the deadline moved
                    await asyncio.wait_for(self._wake.wait(), delay)
            else:  # draining: the delay ends before the drain deadline (checked above)
                await asyncio.sleep(delay)

    # the transport: what subclasses implement
    async def _open(self) -> None:
        raise NotImplementedError

    async def _close(self) -> None:
        raise NotImplementedError

    async def _export(self, payload: bytes, timeout: float) -> Outcome:
        """Send ``payload`` (a serialized ``ExportTraceServiceRequest``) once, within ``timeout`` seconds."""
        raise NotImplementedError


def _partial(body: bytes) -> Outcome:
    try:
        response = ExportTraceServiceResponse.FromString(body)
    except DecodeError:
        return Outcome(ok=True)
    return Outcome(ok=True, rejected_spans=response.partial_success.rejected_spans,
                   message=response.partial_success.error_message)


class GrpcDestination(Destination):
    """``grpc://host:port``: OTLP/gRPC ``TraceService/Export``, protobuf, no TLS."""

    _channel: grpc.aio.Channel | None = None

    async def _open(self) -> None:
        target = self.url[len("grpc://"):].rstrip("/")
        # Short reconnect backoff: a downstream that comes back is seen within our own backoff.
        self._channel = grpc.aio.insecure_channel(target, options=[
            ("grpc.initial_reconnect_backoff_ms", 200),
            ("grpc.min_reconnect_backoff_ms", 200),
            ("grpc.max_reconnect_backoff_ms", int(BACKOFF_MAX_S * 1000)),
            ("grpc.max_send_message_length", -1),
        ])
        self._call = self._channel.unary_unary(EXPORT_METHOD)

    async def _close(self) -> None:
        if self._channel is not None:
            await self._channel.close()
            self._channel = None

    async def _export(self, payload: bytes, timeout: float) -> Outcome:
        try:
            body = await self._call(payload, timeout=timeout)
        except grpc.aio.AioRpcError as exc:
            details = None
            for key, value in exc.trailing_metadata() or ():
                if key == _STATUS_DETAILS_KEY:
                    details = value
            return grpc_outcome(exc.code(), details, exc.details())
        return _partial(body)


class HttpDestination(Destination):
    """``http(s)://host:port[/path]``: OTLP/HTTP ``POST /v1/traces`` with protobuf."""

    _session: aiohttp.ClientSession | None = None

    async def _open(self) -> None:
        base = self.url.rstrip("/")
        self.endpoint = base if base.endswith("/v1/traces") else base + "/v1/traces"
        self._session = aiohttp.ClientSession(headers={"Content-Type": "application/x-protobuf"})

    async def _close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _export(self, payload: bytes, timeout: float) -> Outcome:
        assert self._session is not None
        try:
            async with self._session.post(self.endpoint, data=payload,
                                          timeout=aiohttp.ClientTimeout(total=timeout)) as response:
                body = await response.read()
                if 200 <= response.status < 300:
                    return _partial(body)
                return http_outcome(response.status, response.headers.get("Retry-After"), _status_message(body))
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
            return transport_error_outcome(exc)


def _status_message(body: bytes) -> str:
    try:
        return status_pb2.Status.FromString(body).message or body[:200].decode(errors="replace")
    except DecodeError:
        return body[:200].decode(errors="replace")
