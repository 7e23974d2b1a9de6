"""The join wait for log records (``--forward-join-wait``): a log request with records whose
trace named no session yet is held until the traces name one, for a bounded time, so that its
records are forwarded with their ``session.id`` (as :mod:`.joinwait` does for spans).

A log record that names no session joins its trace's session (``docs/storage.md``, trace
joining); when the trace has named none yet, the store parks the record. Forwarded at once it
would reach the downstream without ``session.id``. :class:`LogJoinWait` holds such a request
whole (its records stay in one OTLP request, in their order) and releases it:

* as soon as every held trace of it has a session, learnt from later span or log requests
  received by this process (:meth:`LogJoinWait.learn`, fed with their trace owners):
  its held records count as ``joined``;
* else when the wait ends, after one look-up of the traces still unknown in the store's trace
  map (another process sharing the Redis may have received the span naming them): records
  of traces found count as ``joined``, the others as ``timeout`` (sent as they are; the
  look-up failing or taking over 2 s counts as not found).

Bounds: at most ``max_records`` held records at once; a request that would go beyond it is
forwarded at once as it is (``overflow``). Held requests count toward every log
destination's queue from when they are held (:meth:`.destinations.Destination.reserve`);
:meth:`LogJoinWait.stop` releases every held request as it is (``shutdown``).

Metrics (:mod:`.metrics`): ``otel_sessions_forward_log_join_held_records`` (gauge) and
``otel_sessions_forward_log_join_records_total`` by ``result`` (``joined``, ``timeout``,
``overflow``, ``shutdown``), in records.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Callable, Mapping

from otel_sessions.exporter.forward.destinations import Destination
from otel_sessions.exporter.forward.joinwait import look_up_owners, run_deadlines
from otel_sessions.exporter.forward.metrics import FORWARD_METRICS
from otel_sessions.exporter.ingest.log_ingest import StoredLogs
from otel_sessions.exporter.store.sessions import SessionStore

__all__ = ["LogJoinWait"]



class _Held:
    """One held log request: its traces still without a session, until released."""

    __slots__ = ("stored", "waiting", "records", "deadline", "since_ms", "destinations")

    def __init__(self, stored: StoredLogs, deadline: float, destinations: list[Destination]) -> None:
        self.stored = stored
        self.waiting = set(stored.unjoined)  # trace ids not joined yet
        self.records = sum(len(indexes) for indexes in stored.unjoined.values())
        self.deadline = deadline  # loop time
        self.since_ms = int(time.time() * 1000)  # the trace-map look-up starts there
        self.destinations = destinations


class LogJoinWait:
    """Log requests held until their records' traces name a session, at most ``wait_s``
    seconds and ``max_records`` records; ``store`` (may be None) answers the look-up when the
    wait ends; ``send(stored, destinations)`` forwards a released request to the destinations
    that reserved room for it.

    ``await start()`` in the service's loop, ``await stop()`` before the destinations stop."""

    def __init__(self, wait_s: float, max_records: int, store: SessionStore | None,
                 send: Callable[[StoredLogs, list[Destination]], None]) -> None:
        self.wait_s = wait_s
        self.max_records = max_records
        self.store = store
        self.send = send
        self.held_records = 0
        self.running = False
        self._entries: deque[_Held] = deque()  # in deadline order (one wait for all)
        self._by_trace: dict[bytes, list[_Held]] = {}
        self._wake = asyncio.Event()
        self._task: asyncio.Task | None = None
        self._gauge = FORWARD_METRICS.log_join_held
        self._counts = FORWARD_METRICS.log_join

    async def start(self) -> None:
        self.running = True
        self._task = asyncio.create_task(self._run(), name="forward log join wait")

    def hold(self, stored: StoredLogs, destinations: list[Destination]) -> bool:
        """Hold ``stored`` (it has :attr:`~StoredLogs.unjoined` records) for every destination
        with room for it; False when the bound is reached (then it is counted as ``overflow``
        and the caller forwards it at once)."""
        entry_records = sum(len(indexes) for indexes in stored.unjoined.values())
        if not self.running or self.held_records + entry_records > self.max_records:
            self._counts["overflow"].inc(entry_records)
            return False
        targets = [d for d in destinations if d.reserve(stored.record_count)]
        if not targets:  # every destination dropped it (counted there)
            return True
        entry = _Held(stored, asyncio.get_running_loop().time() + self.wait_s, targets)
        self._entries.append(entry)
        for trace_id in entry.waiting:
            self._by_trace.setdefault(trace_id, []).append(entry)
        self.held_records += entry.records
        self._gauge.set(self.held_records)
        self._wake.set()
        return True

    def learn(self, owners: Mapping[bytes, str]) -> None:
        """Record the sessions of ``owners``' traces (trace id -> session) in the held requests
        waiting for them; release each request none of whose traces is left waiting."""
        if not self._by_trace or not owners:
            return
        if len(owners) <= len(self._by_trace):
            traces = [trace_id for trace_id in owners if trace_id in self._by_trace]
        else:
            traces = [trace_id for trace_id in self._by_trace if trace_id in owners]
        done = []
        for trace_id in traces:
            for entry in self._by_trace.pop(trace_id):
                self._join(entry, trace_id, owners[trace_id])
                if not entry.waiting:
                    done.append(entry)
        for entry in done:
            self._release(entry, "timeout")

    async def stop(self) -> None:
        """Stop waiting: every held request is released as it is (``shutdown``), at once."""
        self.running = False
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
            self._task = None
        for entry in list(self._entries):
            self._release(entry, "shutdown")
        self._entries.clear()
        self._by_trace.clear()

    @staticmethod
    def _join(entry: _Held, trace_id: bytes, session_id: str) -> None:
        """Give the records of ``trace_id`` in ``entry`` their session."""
        if trace_id not in entry.waiting:
            return
        entry.waiting.discard(trace_id)
        for index in entry.stored.unjoined[trace_id]:
            entry.stored.record_sessions[index] = session_id

    def _release(self, entry: _Held, unjoined: str) -> None:
        """Forward ``entry``; its records still waiting count as ``unjoined``, the others as
        ``joined``."""
        if entry.records == 0:  # released already
            return
        for trace_id in entry.waiting:
            entries = self._by_trace.get(trace_id)
            if entries is not None:
                with contextlib.suppress(ValueError):
                    entries.remove(entry)
                if not entries:
                    del self._by_trace[trace_id]
        other = sum(len(entry.stored.unjoined[t]) for t in entry.waiting)
        joined = entry.records - other
        self.held_records -= entry.records
        entry.records = 0
        self._gauge.set(self.held_records)
        if joined:
            self._counts["joined"].inc(joined)
        if other:
            self._counts[unjoined].inc(other)
        self.send(entry.stored, entry.destinations)

    async def _run(self) -> None:
        await run_deadlines(self._entries, self._wake, lambda entry: entry.records > 0, self._release_due)

    async def _release_due(self, due: list[_Held]) -> None:
        owners = await look_up_owners(self.store, {t for entry in due for t in entry.waiting},
                                      min(entry.since_ms for entry in due), "log join wait")
        for entry in due:  # joined meanwhile (learn): released already, records == 0
            if not entry.records:
                continue
            for trace_id in [t for t in entry.waiting if t in owners]:
                self._join(entry, trace_id, owners[trace_id])
            self._release(entry, "timeout")
