"""The Jaeger API's after-store hook: records services, operations and synthetic trace ids.

What it writes is read back by :class:`~otel_sessions.exporter.jaeger.search.JaegerQuery`
through the same :class:`ServiceIndex`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from otel_sessions.exporter.ingest.ingestor import StoredBatch
from otel_sessions.exporter.jaeger.translate import SPAN_KINDS, UNKNOWN_SERVICE, session_trace_id
from otel_sessions.exporter.store.service_index import ServiceIndex

__all__ = ["JaegerIndex"]

log = logging.getLogger(__name__)


class JaegerIndex:
    """``after_store`` hook keeping the service/operation lists and the synthetic trace map.

    Grouping already collected each request's services and (span kind, span name) pairs, so
    this reads no span. Writes are throttled per name (each is rewritten at most every
    ``refresh_s``) and run as background tasks (at most ``max_inflight`` at once), so ingest
    never waits for them; a write that fails is logged and made again with a later request."""

    def __init__(self, index: ServiceIndex, refresh_s: float = 60.0, max_inflight: int = 4,
                 cache_size: int = 50_000) -> None:
        self.index = index
        self.refresh_s = min(refresh_s, index.retention_ms / 4000)
        self.max_inflight = max_inflight
        self.cache_size = cache_size
        self._written: dict[Any, float] = {}
        self._tasks: set[asyncio.Task] = set()

    def _fresh(self, key: Any, now: float) -> bool:
        return now - self._written.get(key, -1e18) < self.refresh_s

    def __call__(self, stored: StoredBatch) -> None:
        if len(self._tasks) >= self.max_inflight:
            return  # names not written now are written with a later batch
        now = time.monotonic()
        operations: dict[str, set[str]] = {}
        for service, pairs in stored.operations.items():
            service = service or UNKNOWN_SERVICE
            for kind, name in pairs:
                member = f"{SPAN_KINDS[kind] if 0 <= kind < len(SPAN_KINDS) else ''}\0{name}"
                if not self._fresh((service, member), now):
                    operations.setdefault(service, set()).add(member)
        sessions = [sid for sid in stored.sessions if not self._fresh(sid, now)]
        if not operations and not sessions:
            return
        task = asyncio.ensure_future(self._write(operations, sessions, now))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _write(self, operations: dict[str, set[str]], sessions: list[str], now: float) -> None:
        try:
            await self.index.record(operations, {session_trace_id(sid): sid for sid in sessions},
                                    int(time.time() * 1000))
        except Exception as exc:  # the index is best effort: the next batch writes again
            log.warning("jaeger index write failed (made again with a later request): %s", exc)
            return
        if len(self._written) > self.cache_size:
            self._written.clear()
        for service, members in operations.items():
            for member in members:
                self._written[(service, member)] = now
        for session_id in sessions:
            self._written[session_id] = now

    async def stop(self) -> None:
        """Wait for index writes under way (they are short)."""
        if self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
