"""Forwarding (``--forward``): every received span sent on over OTLP, with its session.

:class:`Forwarding` is an :attr:`Ingestor.after_store <otel_sessions.exporter.ingest.Ingestor>`
hook. For each stored request it queues one item per destination and returns at once: it
never blocks or fails ingest. Each destination has its own worker task and its own bounded
queue (counted in spans, ``--forward-queue``); an item that does not fit is dropped and counted.

What is sent is the request as received, in the stock OTLP wire format (gRPC
``TraceService/Export`` with protobuf, or HTTP ``POST /v1/traces`` with
``application/x-protobuf``), with ``session.id``, ``gen_ai.conversation.id`` and ``user.id``
added to spans that lack them where the store knows the span's session.

Spans whose trace has named no session yet (parked by the store for joining) are held up to
``--forward-join-wait`` (default 5 s, ``0``: off) and at most ``--forward-join-max-spans``
spans, while the rest of their request goes on at once; they follow with their session as soon
as their trace names it, else as they are when the wait ends (:mod:`.joinwait`). A request
whose spans all have a session is never delayed.

The parts, one concern each:

* :mod:`.enrichment`: the ids added to forwarded spans, once per item;
* :mod:`.joinwait`: the join wait, its bound and its metrics' counts;
* :mod:`.destinations`: a destination's queue and worker, its retry loop and its drain on
  :meth:`Forwarding.stop`, and the gRPC and HTTP transports;
* :mod:`.retry`: the OTLP retry policy (which failures are retried, server-named delays,
  backoff);
* :mod:`.metrics`: the ``otel_sessions_forward_*`` metrics.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from otel_sessions.exporter.forward.destinations import Destination
from otel_sessions.exporter.forward.enrichment import Item, SessionInfo
from otel_sessions.exporter.forward.joinwait import JoinWait
from otel_sessions.exporter.ingest.ingestor import StoredBatch
from otel_sessions.exporter.store.sessions import SessionStore

__all__ = ["Forwarding", "ForwardSettings"]


@dataclass(frozen=True)
class ForwardSettings:
    """Forwarding's slice of the service settings (``--forward*``; durations in seconds).

    ``join_wait_s``: longest a span whose trace names no session yet is held (0: not held);
    ``join_max_spans``: most spans held at once."""

    urls: tuple[str, ...]
    max_queued_spans: int
    retry_max_s: float
    timeout_s: float
    join_wait_s: float
    join_max_spans: int


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
        self.join = JoinWait(settings.join_wait_s, settings.join_max_spans, store) if settings.join_wait_s > 0 else None
        #: called with each stored request's trace owners (trace id -> session): the log join wait
        self.trace_learners: list[Callable[[Mapping[bytes, str]], None]] = []

    async def start(self) -> None:
        for destination in self.destinations:
            await destination.start()
        if self.join is not None:
            await self.join.start()

    def __call__(self, stored: StoredBatch) -> None:
        """Queue the stored request for every destination (its parked spans held by the join
        wait when it is on and they fit). Never blocks, never raises into ingest."""
        if not stored.span_count:
            return
        for learn in self.trace_learners:
            learn(stored.trace_owners)
        join = self.join
        if join is None or not join.running:
            self._offer(Item(stored))
            return
        parked = stored.parked
        spans = sum(len(keys) for keys in parked.values()) if parked else 0
        if not spans or not join.fits(spans):
            self._offer(Item(stored))
        else:
            if spans < stored.span_count:
                self._offer(Item.without(stored, frozenset(k for keys in parked.values() for k in keys), spans))
            join.hold(stored.body, parked, spans, self.destinations)
        if join.held_spans:
            join.learn(stored.trace_owners)

    def _offer(self, item: Item) -> None:
        for destination in self.destinations:
            destination.offer(item)

    async def stop(self, grace: float = 10.0) -> None:
        """Release the held spans, then drain every destination within ``grace`` seconds
        (together), then close them."""
        deadline = asyncio.get_running_loop().time() + grace
        if self.join is not None:
            await self.join.stop()
        await asyncio.gather(*(d.stop(deadline) for d in self.destinations), return_exceptions=True)
