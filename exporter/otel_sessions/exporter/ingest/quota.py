"""A tenant's quota (``--tenants``), checked before anything of a request is written.

:meth:`TenantQuota.admit` takes a request's span or log record count and the sessions it
names, and raises :class:`~.errors.QuotaExceeded` (429 / ``RESOURCE_EXHAUSTED`` with a retry delay,
which OTLP exporters retry) when the request would go over the tenant's limits; the request is
then refused as a whole, so nothing of it is stored, and its items are counted in
``otel_sessions_tenant_spans_refused_total`` (``..._log_records_refused_total``).

* ``spans_per_second`` / ``log_records_per_second``: a token bucket per tenant and signal in
  Redis (``rate_limit.lua``, ``Keys.quota_bucket``), so every receiver and ``--workers``
  process of the service shares it. It refills at the rate, holds one second's worth, and lets
  a request larger than that pass when it is full (a debt later requests wait out). The retry
  delay is the time until the request would pass. Tokens taken by a request whose write then
  fails are not given back (the retry takes them again).
* ``max_sessions``: sessions of the tenant within the retention, counted from its ``seen``
  indexes (16 ``ZCOUNT``, at most once per second per process, and afresh (at most every 0.1 s) when a
  request would go over the limit; admitted new sessions are added to the count in between). A request that names sessions not stored yet is refused when they
  would take the count over the limit; writes to stored sessions always pass. The retry delay
  is the time until the oldest session expires. Across processes the count is up to a second
  old, so the limit can be passed by what all processes admit within that second.
"""

from __future__ import annotations

import time
from collections.abc import Collection

from otel_sessions.exporter.errors import QuotaExceeded
from otel_sessions.exporter.metrics import METRICS
from otel_sessions.exporter.store.keys import INDEX_SHARDS
from otel_sessions.exporter.store.sessions import SessionStore
from otel_sessions.exporter.tenants import Quota

__all__ = ["TenantQuota", "session_usage"]

#: Longest retry delay asked for (seconds).
MAX_RETRY_S = 3600.0


async def session_usage(store: SessionStore) -> tuple[int, float | None]:
    """(sessions within the retention, ms since the epoch when the oldest of them expires, or
    None when there is none) of the store's namespace: 32 commands, one round trip."""
    cutoff = time.time() * 1000 - store.retention_ms

    def fill(pipe) -> None:
        for shard in range(INDEX_SHARDS):
            pipe.zcount(store.keys.seen(shard), cutoff, "+inf")
            pipe.zrangebyscore(store.keys.seen(shard), cutoff, "+inf", start=0, num=1, withscores=True)

    replies = await store.gateway.run(fill)
    count = sum(int(n) for n in replies[0::2])
    oldest = min((entries[0][1] for entries in replies[1::2] if entries), default=None)
    return count, (oldest + store.retention_ms if oldest is not None else None)


class TenantQuota:
    """The quota checks of one tenant over its namespace's ``store``. One per tenant and process."""

    def __init__(self, tenant: str, quota: Quota, store: SessionStore, count_every_s: float = 1.0) -> None:
        self.tenant = tenant
        self.quota = quota
        self.store = store
        self.count_every_s = count_every_s
        self._script = store.gateway.script("rate_limit")
        self._count: int = 0
        self._expiry_ms: float | None = None
        self._counted_at = -1e18

    async def admit(self, signal: str, items: int, sessions: Collection[str]) -> None:
        """Admit a request of ``items`` spans (``signal`` ``"spans"``) or log records
        (``"logs"``) naming ``sessions``, or raise :class:`QuotaExceeded`."""
        try:
            await self._admit_sessions(sessions)
            rate = self.quota.spans_per_second if signal == "spans" else self.quota.log_records_per_second
            if rate is not None and items > 0:
                await self._admit_rate(signal, rate, items)
        except QuotaExceeded as exc:
            exc.tenant = self.tenant  # for the audit line of the refusal
            counter = METRICS.tenant_spans_refused if signal == "spans" else METRICS.tenant_logs_refused
            counter.labels(self.tenant, exc.quota).inc(items)
            raise

    async def _admit_rate(self, signal: str, rate: float, items: int) -> None:
        key = self.store.keys.quota_bucket(signal)
        wait_ms = (await self.store.gateway.run(lambda pipe: self._script.queue(pipe, [key], [rate, rate, items])))[0]
        if wait_ms:
            what = "spans" if signal == "spans" else "log records"
            raise _throttled(f"tenant over its quota of {rate:g} {what} per second; retry later",
                             int(wait_ms) / 1000, "spans_per_second" if signal == "spans" else "log_records_per_second")

    async def _admit_sessions(self, sessions: Collection[str]) -> None:
        limit = self.quota.max_sessions
        if limit is None or not sessions:
            return
        now = time.monotonic()
        counted = now - self._counted_at >= self.count_every_s
        if counted:
            self._count, self._expiry_ms = await session_usage(self.store)
            self._counted_at = now
        if self._count + len(sessions) <= limit:
            self._count += len(sessions)  # at most: some may be stored already
            return
        if not counted and (self._expiry_ms is None or now - self._counted_at >= 0.1):
            # near the limit: count afresh (sessions expire, other processes admit), at most every 0.1 s
            self._count, self._expiry_ms = await session_usage(self.store)
            self._counted_at = now
        ids = list(sessions)

        def fill(pipe) -> None:
            for session_id in ids:
                pipe.exists(self.store.keys.summary(session_id))

        new = sum(1 for exists in await self.store.gateway.run(fill) if not exists)
        if new and self._count + new > limit:
            wait_s = ((self._expiry_ms - time.time() * 1000) / 1000) if self._expiry_ms is not None else 60.0
            raise _throttled(f"tenant at its quota of {limit} sessions; a new session is taken when an old one "
                             "expires", wait_s, "max_sessions")
        self._count += new


def _throttled(message: str, wait_s: float, quota: str) -> QuotaExceeded:
    return QuotaExceeded(message, min(MAX_RETRY_S, max(0.001, wait_s)), quota)
