"""Forwarding (``--forward``): every received span sent on over OTLP, with its session.

:class:`Forwarding` is an :attr:`Ingestor.after_store <otel_sessions.exporter.ingest.Ingestor>`
hook. For each stored request it queues one item per destination and returns at once: it
never blocks or fails ingest. Each destination has its own worker task and its own bounded
queue (counted in spans, ``--forward-queue``); an item that does not fit is dropped and counted.

What is sent is the request as received, in the stock OTLP wire format (gRPC
``TraceService/Export`` with protobuf, or HTTP ``POST /v1/traces`` with
``application/x-protobuf``), with ``session.id``, ``gen_ai.conversation.id`` and ``user.id``
added to spans that lack them where the store knows the span's session.

The parts, one concern each:

* :mod:`.enrichment`: the ids added to forwarded spans, once per request;
* :mod:`.destinations`: a destination's queue and worker, its retry loop and its drain on
  :meth:`Forwarding.stop`, and the gRPC and HTTP transports;
* :mod:`.retry`: the OTLP retry policy (which failures are retried, server-named delays,
  backoff);
* :mod:`.metrics`: the ``otel_sessions_forward_*`` metrics.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from otel_sessions.exporter.forward.destinations import Destination
from otel_sessions.exporter.forward.enrichment import Item, SessionInfo
from otel_sessions.exporter.ingest.ingestor import StoredBatch
from otel_sessions.exporter.store.sessions import SessionStore

__all__ = ["Forwarding", "ForwardSettings"]


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
        self.sessions = SessionInfo(store)
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
        item = Item(stored)
        for destination in self.destinations:
            destination.offer(item)

    async def stop(self, grace: float = 10.0) -> None:
        """Drain every destination within ``grace`` seconds (together), then close them."""
        deadline = asyncio.get_running_loop().time() + grace
        await asyncio.gather(*(d.stop(deadline) for d in self.destinations), return_exceptions=True)
