"""The join wait (``--forward-join-wait``): spans whose trace names no session yet are held
until it does, for a bounded time, so that they are forwarded with their ``session.id``.

Spans of a trace that arrive before any span of it names a session (a child exported before
its root, the spans of a service without the processor) are parked by the store and written
into the session once a span of the trace names one (trace joining, ``docs/storage.md``).
Forwarded at once they would reach the downstream without ``session.id``, and a downstream
that reads the session per span (Langfuse) or from the root shows the session without them.

:class:`JoinWait` holds those spans (:attr:`StoredBatch.parked
<otel_sessions.exporter.ingest.ingestor.StoredBatch.parked>`) for up to ``wait_s`` seconds
while the rest of their request is forwarded at once. They are released in their own item
(:meth:`.enrichment.Item.held`), each span given its trace's session, thread and user as the
enrichment does:

* as soon as a later request received by this process names the trace's session
  (:meth:`JoinWait.learn` with the request's :attr:`~otel_sessions.exporter.ingest.ingestor.StoredBatch.trace_owners`,
  which the ingestor learns from the store's join replies): ``result="joined"``;
* else when the wait ends, after one look-up of the trace in the store's trace map
  (:meth:`SessionStore.get_trace_sessions
  <otel_sessions.exporter.store.sessions.SessionStore.get_trace_sessions>`: another process
  sharing the Redis may have received the span naming it): ``joined`` when found, else
  ``timeout`` (sent as they are; the look-up failing or taking over 2 s counts as not found).

Bounds: at most ``max_spans`` spans are held at once; the parked spans of a request that would
go beyond it are not held but forwarded as they are with their request (``overflow``). Held
spans count toward every destination's queue bound from when they are held
(:meth:`.destinations.Destination.reserve`; a destination without room drops them at once,
``reason="queue_full"``). :meth:`JoinWait.stop` releases every held span as it is
(``shutdown``), before the destinations drain.

Metrics (:mod:`.metrics`): ``otel_sessions_forward_join_held_spans`` (gauge) and
``otel_sessions_forward_join_spans_total`` by ``result`` (``joined``, ``timeout``,
``overflow``, ``shutdown``), in spans.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from otel_sessions.exporter.forward.destinations import Destination
from otel_sessions.exporter.forward.enrichment import Item
from otel_sessions.exporter.forward.metrics import FORWARD_METRICS
from otel_sessions.exporter.store.sessions import SessionStore

__all__ = ["JoinWait", "LOOKUP_TIMEOUT_S", "look_up_owners", "run_deadlines"]

log = logging.getLogger(__name__)

#: Longest time the trace-map look-up at the end of a wait may take (then: not found).
LOOKUP_TIMEOUT_S = 2.0


class _Held:
    """The held spans of one request: trace id -> their 24-byte keys, until released."""

    __slots__ = ("body", "traces", "deadline", "since_ms", "destinations")

    def __init__(self, body: bytes, traces: dict[bytes, list[bytes]], deadline: float, since_ms: int,
                 destinations: list[Destination]) -> None:
        self.body = body
        self.traces = traces
        self.deadline = deadline  # loop time
        self.since_ms = since_ms  # Unix ms when held (the trace-map look-up starts there)
        self.destinations = destinations


class JoinWait:
    """Spans held until their trace names a session, at most ``wait_s`` seconds and
    ``max_spans`` spans; ``store`` (may be None) answers the look-up when the wait ends.

    ``await start()`` in the service's loop, ``await stop()`` before the destinations stop."""

    def __init__(self, wait_s: float, max_spans: int, store: SessionStore | None) -> None:
        self.wait_s = wait_s
        self.max_spans = max_spans
        self.store = store
        self.held_spans = 0
        self.running = False
        self._entries: deque[_Held] = deque()  # in deadline order (one wait for all)
        self._by_trace: dict[bytes, list[_Held]] = {}
        self._wake = asyncio.Event()
        self._task: asyncio.Task | None = None
        self._gauge = FORWARD_METRICS.join_held
        self._counts = FORWARD_METRICS.join

    async def start(self) -> None:
        self.running = True
        self._task = asyncio.create_task(self._run(), name="forward join wait")

    def fits(self, spans: int) -> bool:
        """True when ``spans`` more spans may be held; else they are counted as ``overflow``."""
        if self.held_spans + spans <= self.max_spans:
            return True
        self._counts["overflow"].inc(spans)
        return False

    def hold(self, body: bytes, parked: Mapping[bytes, list[bytes]], spans: int,
             destinations: list[Destination]) -> None:
        """Hold the spans of request ``body`` listed in ``parked`` (trace id -> 24-byte span
        keys, ``spans`` in all) for every destination with room for them (:meth:`fits` said yes)."""
        targets = [destination for destination in destinations if destination.reserve(spans)]
        if not targets:  # every destination dropped them (counted there)
            return
        loop = asyncio.get_running_loop()
        entry = _Held(body, {trace_id: list(keys) for trace_id, keys in parked.items()}, loop.time() + self.wait_s,
                      int(time.time() * 1000), targets)
        self._entries.append(entry)
        for trace_id in entry.traces:
            self._by_trace.setdefault(trace_id, []).append(entry)
        self.held_spans += spans
        self._gauge.set(self.held_spans)
        self._wake.set()

    def learn(self, owners: Mapping[bytes, str]) -> None:
        """Release the held spans of every trace in ``owners`` (trace id -> its session)."""
        if not self._by_trace or not owners:
            return
        found: dict[_Held, dict[bytes, str | None]] = {}
        if len(owners) <= len(self._by_trace):
            traces = [trace_id for trace_id in owners if trace_id in self._by_trace]
        else:
            traces = [trace_id for trace_id in self._by_trace if trace_id in owners]
        for trace_id in traces:
            for entry in self._by_trace.pop(trace_id):
                found.setdefault(entry, {})[trace_id] = owners[trace_id]
        for entry, sessions in found.items():
            self._release(entry, sessions, "joined")

    async def stop(self) -> None:
        """Stop waiting: every held span is released as it is (``shutdown``), at once."""
        self.running = False
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
            self._task = None
        for entry in self._entries:
            self._release(entry, dict.fromkeys(entry.traces), "shutdown")
        self._entries.clear()
        self._by_trace.clear()

    def _release(self, entry: _Held, sessions: dict[bytes, str | None], unjoined: str) -> None:
        """Send the held spans of ``sessions``' traces of ``entry``, each trace with its session
        (None: as they are, counted as ``unjoined``)."""
        keys: list[bytes] = []
        owners: dict[bytes, str] = {}
        joined = other = 0
        for trace_id, session_id in sessions.items():
            held = entry.traces.pop(trace_id, None)
            if held is None:
                continue
            entries = self._by_trace.get(trace_id)
            if entries is not None:
                with contextlib.suppress(ValueError):
                    entries.remove(entry)
                if not entries:
                    del self._by_trace[trace_id]
            keys += held
            if session_id:
                owners[trace_id] = session_id
                joined += len(held)
            else:
                other += len(held)
        count = joined + other
        if not count:
            return
        self.held_spans -= count
        self._gauge.set(self.held_spans)
        if joined:
            self._counts["joined"].inc(joined)
        if other:
            self._counts[unjoined].inc(other)
        item = Item.held(entry.body, frozenset(keys), owners, count)
        if not entry.traces:
            entry.body = b""
        for destination in entry.destinations:
            destination.offer(item, reserved=True)

    async def _run(self) -> None:
        await run_deadlines(self._entries, self._wake, lambda entry: bool(entry.traces), self._release_due)

    async def _release_due(self, due: list[_Held]) -> None:
        owners = await look_up_owners(self.store, {t for entry in due for t in entry.traces},
                                      min(entry.since_ms for entry in due), "join wait")
        for entry in due:  # spans joined meanwhile (learn) are gone from entry.traces
            self._release(entry, {trace_id: owners.get(trace_id) for trace_id in entry.traces}, "timeout")



async def run_deadlines(entries: deque, wake: asyncio.Event, live: Callable[[Any], bool],
                        on_due: Callable[[list], Awaitable[None]]) -> None:
    """The loop of a join wait: ``entries`` (each with a ``deadline`` in loop time, appended in
    deadline order) are handed to ``on_due`` once their deadline passed, those still ``live``,
    a batch at a time; entries no longer live are dropped from the front; ``wake`` is set when an
    entry is added to an empty wait. Runs until cancelled."""
    loop = asyncio.get_running_loop()
    while True:
        while entries and not live(entries[0]):
            entries.popleft()
        if not entries:
            wake.clear()
            await wake.wait()
            continue
        delay = entries[0].deadline - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
            continue
        now = loop.time()
        due = []
        for entry in entries:
            if entry.deadline > now:
                break
            if live(entry):
                due.append(entry)
        await on_due(due)


async def look_up_owners(store: SessionStore | None, traces: set[bytes], since_ms: int, what: str) -> dict[bytes, str]:
    """The sessions the store's trace map names for ``traces`` (written since ``since_ms``), best
    effort: a failure or a look-up over :data:`LOOKUP_TIMEOUT_S` is nothing found."""
    if not traces or store is None:
        return {}
    try:
        return await asyncio.wait_for(store.get_trace_sessions(traces, since_ms), LOOKUP_TIMEOUT_S)
    except asyncio.CancelledError:
        raise
    except Exception as exc:  # StoreUnavailable, a timeout: the held data goes on as it is
        log.debug("forwarding: cannot look up %d traces for the %s: %s", len(traces), what, exc)
        return {}
