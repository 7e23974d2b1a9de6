"""Forwarding (``--forward``): every received span sent on over OTLP, with its session.

:class:`Forwarding` is an :attr:`Ingestor.after_store <otel_sessions.exporter.ingest.Ingestor>`
hook. For each stored request it queues one item per destination and returns at once: it
never blocks or fails ingest. Each destination has its own worker task and its own bounded
queue (counted in spans, ``--forward-queue``); an item that does not fit is dropped and counted.

What is sent is the request as received, in the stock OTLP wire format (gRPC
``TraceService/Export`` with protobuf, or HTTP ``POST /v1/traces`` with
``application/x-protobuf``), with ``session.id``, ``gen_ai.conversation.id`` and ``user.id``
added to spans that lack them where the store knows the span's session: by the span's own
ids, by its trace (trace joining, within the request or through Redis), and for the thread and
user, from the session's summary when the request itself does not name them. The first value
wins: an attribute a span carries is never overwritten. Enrichment runs once per request, in
the first worker that sends it, off the ingest path. Spans whose trace names no session when
they arrive (parked for joining) are forwarded as they are.

Retries follow the OTLP specification (protocol/exporter.md, "Retry"):

* gRPC: ``CANCELLED``, ``DEADLINE_EXCEEDED``, ``ABORTED``, ``OUT_OF_RANGE``, ``UNAVAILABLE``,
  ``DATA_LOSS`` are retried, and ``RESOURCE_EXHAUSTED`` only when the status carries a
  ``google.rpc.RetryInfo``; the ``RetryInfo`` delay is honoured.
* HTTP: 429, 502, 503 and 504 are retried, honouring ``Retry-After`` (seconds or a date);
  connection errors and timeouts are retried too.
* Anything else is permanent: the batch is dropped and counted (``reason="rejected"``).

Between tries the worker waits with exponential backoff (0.5 s doubling to 5 s, ±20 % jitter)
unless the server named a delay; a batch is given up after ``--forward-retry-max``
(``reason="retries_exhausted"``). While a destination is down its worker retries the oldest
batch and the queue fills up to its bound, then new batches are dropped (``reason="queue_full"``).

:meth:`Forwarding.stop` drains: workers go on sending until their queue is empty or the
deadline passes; what is left is dropped and counted (``reason="shutdown"``).

Metrics, each with a ``destination`` label (the ``--forward`` URL):
``otel_sessions_forward_spans_sent_total``, ``otel_sessions_forward_spans_dropped_total``
(and ``reason``), ``otel_sessions_forward_retries_total``, ``otel_sessions_forward_queue_spans``.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import logging
import random
import time
from collections import OrderedDict, deque
from dataclasses import dataclass

import aiohttp
import grpc
from google.protobuf.message import DecodeError
from google.rpc import error_details_pb2, status_pb2
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from prometheus_client import Counter, Gauge

from otel_sessions.exporter.ingest.ingestor import StoredBatch
from otel_sessions.exporter.store.sessions import SessionStore
from otel_sessions.processor import attributes as attr

__all__ = ["Forwarding", "Destination", "FORWARD_METRICS", "EXPORT_METHOD"]

log = logging.getLogger(__name__)

EXPORT_METHOD = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"

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
_STATUS_DETAILS_KEY = "grpc-status-details-bin"


class _ForwardMetrics:
    def __init__(self) -> None:
        self.sent = Counter("otel_sessions_forward_spans_sent_total",
                            "Spans a forward destination acknowledged", ["destination"])
        self.dropped = Counter("otel_sessions_forward_spans_dropped_total",
                               "Spans not forwarded: queue_full, rejected, retries_exhausted or shutdown",
                               ["destination", "reason"])
        self.retries = Counter("otel_sessions_forward_retries_total",
                               "Export requests to a forward destination that will be tried again", ["destination"])
        self.queued = Gauge("otel_sessions_forward_queue_spans",
                            "Spans waiting for a forward destination (including the batch being sent)",
                            ["destination"], multiprocess_mode="livesum")
        self.enriched = Counter("otel_sessions_forward_spans_enriched_total",
                                "Forwarded spans given session.id, gen_ai.conversation.id or user.id")


FORWARD_METRICS = _ForwardMetrics()


@dataclass
class _Outcome:
    ok: bool
    retryable: bool = False
    retry_after: float | None = None
    rejected_spans: int = 0
    message: str = ""


# --- one stored request, prepared once for every destination --------------------------------
class _Item:
    """A stored request waiting to be forwarded; enriched lazily, once, off the ingest path."""

    __slots__ = ("body", "span_count", "_stored", "_payload")

    def __init__(self, stored: StoredBatch):
        self.body = stored.body
        self.span_count = stored.span_count
        self._stored: StoredBatch | None = stored if stored.sessions else None
        self._payload: asyncio.Future[bytes] | None = None

    async def payload(self, sessions: _SessionInfo) -> bytes:
        if self._payload is None:
            self._payload = asyncio.ensure_future(self._enrich(sessions))
        return await asyncio.shield(self._payload)

    async def _enrich(self, sessions: _SessionInfo) -> bytes:
        stored, self._stored = self._stored, None
        if stored is None:
            return self.body
        for session_id, (thread_id, user_id) in stored.sessions.items():
            sessions.learn(session_id, thread_id, user_id)
        by_span = stored.span_sessions
        infos = await sessions.lookup(set(by_span.values()))
        request = ExportTraceServiceRequest.FromString(self.body)
        enriched = 0
        for rs in request.resource_spans:
            for ss in rs.scope_spans:
                for span in ss.spans:
                    session_id = by_span.get(span.trace_id + span.span_id)
                    if session_id is None:
                        continue
                    thread_id, user_id = infos.get(session_id, (None, None))
                    present = {kv.key for kv in span.attributes}
                    added = False
                    for key, value in ((attr.SESSION_ID, session_id), (attr.THREAD_ID, thread_id),
                                       (attr.USER_ID, user_id)):
                        if value and key not in present:
                            kv = span.attributes.add()
                            kv.key = key
                            kv.value.string_value = value
                            added = True
                    enriched += added
        if not enriched:
            return self.body
        FORWARD_METRICS.enriched.inc(enriched)
        return request.SerializeToString()


class _SessionInfo:
    """Thread and user of sessions: learnt from batches, else read from the store (LRU cache)."""

    def __init__(self, store: SessionStore | None, size: int = 10_000) -> None:
        self.store = store
        self.size = size
        self._known: OrderedDict[str, tuple[str | None, str | None]] = OrderedDict()

    def learn(self, session_id: str, thread_id: str | None, user_id: str | None) -> None:
        old_thread, old_user = self._known.get(session_id, (None, None))
        self._known[session_id] = (old_thread or thread_id, old_user or user_id)
        self._known.move_to_end(session_id)
        if len(self._known) > self.size:
            self._known.popitem(last=False)

    async def lookup(self, session_ids: set[str]) -> dict[str, tuple[str | None, str | None]]:
        missing = [s for s in session_ids if None in self._known.get(s, (None, None))]
        if missing and self.store is not None:
            try:
                summaries = await self.store.get_summaries(missing)
            except Exception as exc:  # enrichment is best effort (StoreUnavailable included)
                log.debug("forwarding: cannot read session summaries: %s", exc)
                summaries = []
            for session_id, summary in zip(missing, summaries):
                if summary is not None:
                    self.learn(session_id, summary.thread_id, summary.user_id)
        return {s: self._known.get(s, (None, None)) for s in session_ids}


# --- destinations ----------------------------------------------------------------------------
class Destination:
    """One ``--forward`` URL: a bounded queue (in spans) and a worker that sends with retries."""

    def __init__(self, url: str, *, max_queued_spans: int, retry_max_s: float, timeout_s: float,
                 sessions: _SessionInfo, backoff_initial_s: float = BACKOFF_INITIAL_S,
                 backoff_max_s: float = BACKOFF_MAX_S) -> None:
        self.url = url
        self.max_queued_spans = max_queued_spans
        self.retry_max_s = retry_max_s
        self.timeout_s = timeout_s
        self.backoff_initial_s = backoff_initial_s
        self.backoff_max_s = backoff_max_s
        self.sessions = sessions
        self.queued_spans = 0
        self._queue: deque[_Item] = deque()
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

    def offer(self, item: _Item) -> bool:
        """Queue ``item`` unless it would exceed the bound (then it is dropped and counted)."""
        if self._stop_at is not None or self.queued_spans + item.span_count > self.max_queued_spans:
            self._drop(item.span_count, "shutdown" if self._stop_at is not None else "queue_full")
            return False
        self._queue.append(item)
        self.queued_spans += item.span_count
        self._gauge.set(self.queued_spans)
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
        self.queued_spans = 0
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

    async def _deliver(self, item: _Item) -> None:
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
                delay = min(self.backoff_max_s, self.backoff_initial_s * 2 ** attempt) * random.uniform(0.8, 1.2)
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

    # transport-specific
    async def _open(self) -> None:
        raise NotImplementedError

    async def _close(self) -> None:
        raise NotImplementedError

    async def _export(self, payload: bytes, timeout: float) -> _Outcome:
        raise NotImplementedError


def _partial(body: bytes) -> _Outcome:
    try:
        response = ExportTraceServiceResponse.FromString(body)
    except DecodeError:
        return _Outcome(ok=True)
    return _Outcome(ok=True, rejected_spans=response.partial_success.rejected_spans,
                    message=response.partial_success.error_message)


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

    async def _export(self, payload: bytes, timeout: float) -> _Outcome:
        try:
            body = await self._call(payload, timeout=timeout)
        except grpc.aio.AioRpcError as exc:
            code = exc.code()
            details = None
            for key, value in exc.trailing_metadata() or ():
                if key == _STATUS_DETAILS_KEY:
                    details = value
            delay = retry_info_delay(details)
            retryable = code in RETRYABLE_GRPC_CODES or (
                code == grpc.StatusCode.RESOURCE_EXHAUSTED and delay is not None)
            return _Outcome(ok=False, retryable=retryable, retry_after=delay,
                            message=f"{code.name}: {exc.details()}")
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

    async def _export(self, payload: bytes, timeout: float) -> _Outcome:
        assert self._session is not None
        try:
            async with self._session.post(self.endpoint, data=payload,
                                          timeout=aiohttp.ClientTimeout(total=timeout)) as response:
                body = await response.read()
                if 200 <= response.status < 300:
                    return _partial(body)
                retryable = response.status in RETRYABLE_HTTP_STATUSES
                delay = retry_after_seconds(response.headers.get("Retry-After")) if retryable else None
                return _Outcome(ok=False, retryable=retryable, retry_after=delay,
                                message=f"HTTP {response.status}: {_status_message(body)}")
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
            return _Outcome(ok=False, retryable=True, message=f"{type(exc).__name__}: {exc}")


def _status_message(body: bytes) -> str:
    try:
        return status_pb2.Status.FromString(body).message or body[:200].decode(errors="replace")
    except DecodeError:
        return body[:200].decode(errors="replace")


# --- the hook --------------------------------------------------------------------------------
@dataclass(frozen=True)
class ForwardSettings:
    """Forwarding's slice of the service settings (``--forward*``; durations in seconds)."""

    urls: tuple[str, ...]
    max_queued_spans: int
    retry_max_s: float
    timeout_s: float


class Forwarding:
    """The ``after_store`` hook that forwards every stored request to each destination.

    ``await start()`` in the service's loop before ingest begins; ``await stop(grace)`` after
    the receivers stopped and before the store closes.
    """

    def __init__(self, settings: ForwardSettings, store: SessionStore | None, **backoff) -> None:
        self.sessions = _SessionInfo(store)
        self.destinations = [
            Destination.create(url, max_queued_spans=settings.max_queued_spans, retry_max_s=settings.retry_max_s,
                               timeout_s=settings.timeout_s, sessions=self.sessions, **backoff)
            for url in settings.urls
        ]

    async def start(self) -> None:
        for destination in self.destinations:
            await destination.start()

    def __call__(self, stored: StoredBatch) -> None:
        """Queue the stored request for every destination. Never blocks, never raises into ingest."""
        if not stored.span_count:
            return
        item = _Item(stored)
        for destination in self.destinations:
            destination.offer(item)

    async def stop(self, grace: float = 10.0) -> None:
        """Drain every destination within ``grace`` seconds (together), then close them."""
        deadline = asyncio.get_running_loop().time() + grace
        await asyncio.gather(*(d.stop(deadline) for d in self.destinations), return_exceptions=True)
