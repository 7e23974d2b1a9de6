"""Each tenant's components over the process's one Redis gateway.

A tenant's :class:`TenantServices` are its session store (its own key prefix,
``tenants.tenant_key_prefix``), ingestor and log ingest (with its quota and its after-store
hooks: the Jaeger index, forwarding), lookups, transcripts and Jaeger index reader. Every
route resolves its caller's tenant (``auth.py``) and works on that tenant's components only,
so no request of one tenant reads, writes, tails or deletes another's keys.

:class:`Tenancy` builds a tenant's components on its first request (cheap objects; forwarding
starts its workers then) and stops them all with the service. They share the gateway, its
connections and its loaded scripts, the span builder (price table) and the redactor.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

from otel_sessions.exporter.forward.forwarding import Forwarding, ForwardSettings
from otel_sessions.exporter.forward.logs import LogForwarding
from otel_sessions.exporter.ingest.grouping import BatchBuilder
from otel_sessions.exporter.ingest.ingestor import Ingestor
from otel_sessions.exporter.ingest.log_ingest import LogIngest
from otel_sessions.exporter.ingest.quota import TenantQuota, session_usage
from otel_sessions.exporter.ingest.redaction import Redactor
from otel_sessions.exporter.jaeger.index import JaegerIndex
from otel_sessions.exporter.lookup.conversation import Conversations
from otel_sessions.exporter.lookup.queries import SessionQueries
from otel_sessions.exporter.metrics import METRICS
from otel_sessions.exporter.store.gateway import RedisGateway
from otel_sessions.exporter.store.keys import INDEX_SHARDS
from otel_sessions.exporter.store.service_index import ServiceIndex
from otel_sessions.exporter.store.sessions import SessionStore, StoreSettings
from otel_sessions.exporter.tenants import DEFAULT_TENANT, Quota, Tenant, tenant_key_prefix

__all__ = ["TenantServices", "Tenancy"]

#: Sessions whose keys are measured per tenant for ``otel_sessions_tenant_redis_bytes``.
USAGE_SAMPLE_SESSIONS = 16
#: Seconds the sampled usage figures are kept before a scrape reads Redis again.
USAGE_REFRESH_S = 15.0


@dataclass
class TenantServices:
    """One tenant's components (see the module doc)."""

    name: str
    store: SessionStore
    ingestor: Ingestor
    log_ingest: LogIngest
    queries: SessionQueries
    conversations: Conversations
    service_index: ServiceIndex
    jaeger_index: JaegerIndex
    forwarding: Forwarding | None = None
    log_forwarding: LogForwarding | None = None

    async def stop(self, grace: float) -> None:
        """Drain forwarding within ``grace`` seconds, finish the Jaeger index writes."""
        if self.forwarding is not None:
            await asyncio.gather(self.forwarding.stop(grace),
                                 *([self.log_forwarding.stop(grace)] if self.log_forwarding is not None else []))
            self.forwarding = self.log_forwarding = None
        await self.jaeger_index.stop()


class Tenancy:
    """The tenants' components of one process, built on first use.

    ``tenants``: the tenants of the tenants file (the default tenant is always known: it is the
    whole service without tokens, and the data a ``default`` tenant of the file takes over)."""

    def __init__(self, gateway: RedisGateway, store_settings: StoreSettings, builder: BatchBuilder,
                 tenants: dict[str, Tenant], redactor: Redactor | None = None,
                 forward: ForwardSettings | None = None) -> None:
        self.gateway = gateway
        self.store_settings = store_settings
        self.builder = builder
        self.redactor = redactor
        self.forward = forward if forward is not None and forward.urls else None
        self.tenants = dict(tenants)
        self._built: dict[str, TenantServices] = {}
        self._starting: dict[str, asyncio.Future] = {}
        self._usage_at = -1e18
        self._usage_lock = asyncio.Lock()

    @property
    def names(self) -> list[str]:
        """Every tenant of the service: the file's, and the default tenant."""
        return sorted({DEFAULT_TENANT, *self.tenants})

    def prefix(self, name: str) -> str:
        return tenant_key_prefix(self.store_settings.key_prefix, name)

    def store_of(self, name: str) -> SessionStore:
        """A store over ``name``'s namespace (built components use their own)."""
        built = self._built.get(name)
        if built is not None:
            return built.store
        return SessionStore(self.gateway, replace(self.store_settings, key_prefix=self.prefix(name)))

    async def get(self, name: str) -> TenantServices:
        """``name``'s components, built (and forwarding started) on the first call."""
        built = self._built.get(name)
        if built is not None:
            return built
        starting = self._starting.get(name)
        if starting is None:
            starting = self._starting[name] = asyncio.ensure_future(self._build(name))
        try:
            return await asyncio.shield(starting)
        finally:
            if starting.done():
                self._starting.pop(name, None)

    async def _build(self, name: str) -> TenantServices:
        tenant = self.tenants.get(name)
        quota_limits = tenant.quota if tenant is not None else Quota()
        store = SessionStore(self.gateway, replace(self.store_settings, key_prefix=self.prefix(name)))
        quota = TenantQuota(name, quota_limits, store) if quota_limits.any else None
        ingestor = Ingestor(store, self.builder, redactor=self.redactor, tenant=name, quota=quota)
        log_ingest = LogIngest(ingestor)
        queries = SessionQueries(store)
        service_index = ServiceIndex(self.gateway, store.keys, store.retention_ms)
        jaeger_index = JaegerIndex(service_index)
        ingestor.after_store.append(jaeger_index)
        services = TenantServices(name=name, store=store, ingestor=ingestor, log_ingest=log_ingest, queries=queries,
                                  conversations=Conversations(store, queries), service_index=service_index,
                                  jaeger_index=jaeger_index)
        if self.forward is not None:
            services.forwarding = Forwarding(self.forward, store)
            await services.forwarding.start()
            ingestor.after_store.append(services.forwarding)
            services.log_forwarding = LogForwarding(self.forward, services.forwarding.sessions, store)
            services.forwarding.trace_learners.append(services.log_forwarding.learn)
            await services.log_forwarding.start()
            log_ingest.after_store.append(services.log_forwarding)
        self._built[name] = services
        return services

    def replace_tenants(self, tenants: dict[str, Tenant]) -> None:
        """The tenants of a reloaded tenants file: their quotas apply from the next request (a
        built tenant's quota is replaced, its counts start afresh); a tenant no longer in the
        file keeps its data and components, but no token names it any more."""
        self.tenants = dict(tenants)
        for name, services in self._built.items():
            tenant = self.tenants.get(name)
            limits = tenant.quota if tenant is not None else Quota()
            services.ingestor.quota = TenantQuota(name, limits, services.store) if limits.any else None

    def built(self, name: str) -> TenantServices | None:
        return self._built.get(name)

    async def stop(self, grace: float) -> None:
        """Stop every tenant's components (forwarding drains within ``grace`` seconds)."""
        for starting in list(self._starting.values()):
            await asyncio.gather(starting, return_exceptions=True)
        await asyncio.gather(*(services.stop(grace) for services in self._built.values()), return_exceptions=True)
        self._built.clear()

    async def sample_usage(self, now: Callable[[], float] = time.monotonic) -> None:
        """Set ``otel_sessions_tenant_sessions`` and ``otel_sessions_tenant_redis_bytes`` of every
        tenant from Redis, at most once per :data:`USAGE_REFRESH_S` (a scrape of ``/metrics``
        calls it). The bytes are the ``MEMORY USAGE`` of the keys of up to
        :data:`USAGE_SAMPLE_SESSIONS` sessions picked at random, scaled to the session count."""
        async with self._usage_lock:
            if now() - self._usage_at < USAGE_REFRESH_S:
                return
            for name in self.names:
                store = self.store_of(name)
                count, _expiry = await session_usage(store)
                METRICS.tenant_sessions.labels(name).set(count)
                METRICS.tenant_redis_bytes.labels(name).set(await _sampled_bytes(store, count))
            self._usage_at = now()


async def _sampled_bytes(store: SessionStore, count: int) -> float:
    """The estimated memory of ``count`` sessions of ``store``: a random sample's keys, measured."""
    if not count:
        return 0.0
    shards = random.sample(range(INDEX_SHARDS), INDEX_SHARDS)

    def pick(pipe) -> None:
        for shard in shards:
            pipe.zrandmember(store.keys.seen(shard), USAGE_SAMPLE_SESSIONS)

    picked = [m.decode() for reply in await store.gateway.run(pick) for m in (reply or [])]
    picked = random.sample(picked, min(len(picked), USAGE_SAMPLE_SESSIONS))
    if not picked:
        return 0.0

    def measure(pipe) -> None:
        for session_id in picked:
            for key in (*store.keys.session(session_id), *store.keys.session_logs(session_id)[1:]):
                pipe.memory_usage(key)

    sizes = await store.gateway.run(measure)
    return sum(size or 0 for size in sizes) / len(picked) * count
