"""One server process: the gRPC port and the HTTP port over the tenants' session stores.

:class:`Service` owns the Redis client, the tenants' components (``tenancy.py``: each tenant's
store in its own namespace, built on its first request), both servers and their shutdown:
``stop()`` refuses new requests, lets in-flight ones finish within a grace period (so what
was acknowledged is written and what was not gets an error the exporter retries), then
closes Redis.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import grpc
from aiohttp import web
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from otel_sessions.exporter.forward.forwarding import Forwarding
from otel_sessions.exporter.ingest.inflight import InflightBytes
from otel_sessions.exporter.ingest.ingestor import Ingestor
from otel_sessions.exporter.ingest.log_ingest import LogIngest
from otel_sessions.exporter.ingest.native import batch_builder
from otel_sessions.exporter.ingest.native import status as scanner_status
from otel_sessions.exporter.ingest.otlp_grpc import (
    LOGS_SERVICE,
    TRACE_SERVICE,
    logs_service_handler,
    trace_service_handler,
)
from otel_sessions.exporter.ingest.pricing import PriceTable
from otel_sessions.exporter.jaeger.routes import jaeger_routes
from otel_sessions.exporter.jaeger.search import JaegerQuery
from otel_sessions.exporter.metrics import METRICS
from otel_sessions.exporter.serve import bad_http_log
from otel_sessions.exporter.serve.app import create_app
from otel_sessions.exporter.serve.cors import install_cors
from otel_sessions.exporter.serve.exposure import guessable_token_warnings
from otel_sessions.exporter.serve.grpc_service import SESSION_SERVICE, add_session_service
from otel_sessions.exporter.serve.host_check import install_host_check
from otel_sessions.exporter.serve.page import page_routes
from otel_sessions.exporter.serve.rest import lookup_routes
from otel_sessions.exporter.serve.settings import Settings
from otel_sessions.exporter.serve.tenancy import Tenancy
from otel_sessions.exporter.store.gateway import RedisGateway
from otel_sessions.exporter.store.redis_client import connect
from otel_sessions.exporter.store.sessions import SessionStore
from otel_sessions.exporter.tenants import DEFAULT_TENANT, TenantsError, load_tenants

__all__ = ["Service", "Listening", "grpc_server_options"]

log = logging.getLogger(__name__)

#: gRPC connections are closed (GOAWAY) after this long, whatever they do, then given the
#: grace below to finish their calls: bounds a connection that trickles a message, and
#: spreads clients over ``--workers`` again. A TailSession stream ends with its connection.
GRPC_MAX_CONNECTION_AGE_S = 30 * 60
GRPC_MAX_CONNECTION_AGE_GRACE_S = 60
#: The server pings a connection silent this long, and drops it when no answer comes in time
#: (a peer gone without closing).
GRPC_KEEPALIVE_TIME_S = 120
GRPC_KEEPALIVE_TIMEOUT_S = 20
#: Clients may ping this often at most, with or without calls in progress (gRPC's default
#: refuses pings without calls and asks 5 minutes between pings, which sends GOAWAY to
#: exporters configured with keepalive); twice more often and the connection is closed.
GRPC_MIN_CLIENT_PING_INTERVAL_S = 10
#: Calls at once on one connection (HTTP/2 SETTINGS_MAX_CONCURRENT_STREAMS); more wait in the client.
GRPC_MAX_STREAMS_PER_CONNECTION = 100
#: A new connection must finish its HTTP/2 handshake within this long.
GRPC_HANDSHAKE_TIMEOUT_S = 20


def grpc_server_options(settings: Settings) -> list[tuple[str, int]]:
    """The gRPC server's channel arguments: message size limits, connection idle and age,
    keepalive enforcement, streams per connection. gRPC core reads HTTP/2 frames itself, so
    a slow sender holds only its own connection, and for at most the connection's age."""
    return [
        ("grpc.max_receive_message_length", settings.max_request_bytes),
        ("grpc.max_send_message_length", settings.max_request_bytes),
        ("grpc.so_reuseport", 1 if settings.workers > 1 else 0),
        ("grpc.max_connection_idle_ms", round(settings.connection_idle_timeout * 1000)),
        ("grpc.max_connection_age_ms", GRPC_MAX_CONNECTION_AGE_S * 1000),
        ("grpc.max_connection_age_grace_ms", GRPC_MAX_CONNECTION_AGE_GRACE_S * 1000),
        ("grpc.keepalive_time_ms", GRPC_KEEPALIVE_TIME_S * 1000),
        ("grpc.keepalive_timeout_ms", GRPC_KEEPALIVE_TIMEOUT_S * 1000),
        ("grpc.keepalive_permit_without_calls", 1),
        ("grpc.http2.min_ping_interval_without_data_ms", GRPC_MIN_CLIENT_PING_INTERVAL_S * 1000),
        ("grpc.http2.max_ping_strikes", 2),
        ("grpc.max_concurrent_streams", GRPC_MAX_STREAMS_PER_CONNECTION),
        ("grpc.server_handshake_timeout_ms", GRPC_HANDSHAKE_TIMEOUT_S * 1000),
    ]


@dataclass(frozen=True)
class Listening:
    grpc: tuple[str, int]
    http: tuple[str, int]
    span_reader: str = ""  # what reads OTLP span requests: "native scanner", "pure-Python path (why)"


class Service:
    """The gRPC and HTTP servers of one process. ``await start()``, then ``await stop()``.

    Both ports always serve the session lookups (REST routes of rest.py, gRPC SessionService);
    ``extra_http_routes`` adds more routes to the HTTP port.
    """

    def __init__(self, settings: Settings, redis_url: str,
                 extra_http_routes: Iterable[Callable[[web.Application], None]] = ()) -> None:
        self.settings = settings
        self.redis_url = redis_url
        #: who may do what (the tenants' tokens; none configured: open)
        self.access = settings.access()
        self.extra_http_routes = list(extra_http_routes)
        #: every tenant's components (built on first use)
        self.tenancy: Tenancy | None = None
        # the default tenant's components (the whole service without a tenants file)
        self.store: SessionStore | None = None
        self.ingestor: Ingestor | None = None
        self.log_ingest: LogIngest | None = None
        self.forwarding: Forwarding | None = None
        self._gateway: RedisGateway | None = None
        self._grpc: grpc.aio.Server | None = None
        self._http: web.AppRunner | None = None
        self._health: health.aio.HealthServicer | None = None
        #: request bytes held by both transports together (--max-inflight-bytes)
        self.inflight = InflightBytes(settings.max_inflight_bytes)
        self.listening: Listening | None = None

    async def _connect(self, timeout: float = 15.0) -> RedisGateway:
        s = self.settings
        client = connect(self.redis_url, cluster=s.redis_cluster, socket_timeout=s.redis_timeout)
        gateway = RedisGateway(client)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            try:
                await gateway.load_scripts()
                return gateway
            except Exception as exc:  # connection refused, loading, auth...
                if loop.time() > deadline:
                    await gateway.close()
                    raise RuntimeError(f"cannot reach Redis at {s.redacted_redis_url or 'the embedded server'}: {exc}") from exc
                await asyncio.sleep(0.25)

    async def _ingestor_for(self, authorization: str | None) -> Ingestor:
        """The span ingestor of the caller's tenant (a token with the ``ingest`` scope)."""
        principal = self.access.require(authorization, "ingest")
        return (await self.tenancy.get(principal.tenant)).ingestor

    async def _log_ingest_for(self, authorization: str | None) -> LogIngest:
        """The log ingest of the caller's tenant (a token with the ``ingest`` scope)."""
        principal = self.access.require(authorization, "ingest")
        return (await self.tenancy.get(principal.tenant)).log_ingest

    async def _jaeger_query_for(self, tenant: str) -> JaegerQuery:
        services = await self.tenancy.get(tenant)
        return JaegerQuery(services.store, services.service_index)

    async def start(self) -> Listening:
        s = self.settings
        self._gateway = await self._connect()
        builder = batch_builder(PriceTable.load(s.prices), max_id_length=s.max_id_length)
        self.tenancy = Tenancy(self._gateway, s.store_settings(), builder, self.access.tenants,
                               redactor=s.redactor(), forward=s.forward_settings())
        default = await self.tenancy.get(DEFAULT_TENANT)
        self.store, self.ingestor, self.log_ingest = default.store, default.ingestor, default.log_ingest
        self.forwarding = default.forwarding
        self.span_reader = (scanner_status()[1] if self.ingestor.reads_bytes or not builder.native
                            else "pure-Python path (redaction needs parsed messages)")
        METRICS.ingest_native.set(1 if self.ingestor.reads_bytes else 0)
        log.debug("OTLP spans are read by the %s", self.span_reader)  # serve prints it among its start lines
        if not self.access.open:
            log.debug("tokens needed (%d tenant(s))", len(self.access.tenants))  # serve prints the access line

        server = grpc.aio.server(options=grpc_server_options(s))
        server.add_generic_rpc_handlers((trace_service_handler(self._ingestor_for, self.inflight),
                                         logs_service_handler(self._log_ingest_for, self.inflight)))
        add_session_service(server, self.access, self.tenancy)
        self._health = health.aio.HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(self._health, server)
        reflection.enable_server_reflection(
            (TRACE_SERVICE, LOGS_SERVICE, SESSION_SERVICE, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
             reflection.SERVICE_NAME),
            server)
        host, port = s.grpc_listen
        try:
            bound = server.add_insecure_port(f"[{host}]:{port}" if ":" in host else f"{host}:{port}")
        except RuntimeError:  # grpcio raises "Failed to bind" where older versions returned 0
            bound = 0
        if bound == 0:
            raise RuntimeError(f"cannot listen on {host}:{port} for gRPC (--grpc-listen): address in use?")
        await server.start()
        self._grpc = server
        await self._health.set("", health_pb2.HealthCheckResponse.SERVING)
        await self._health.set(TRACE_SERVICE, health_pb2.HealthCheckResponse.SERVING)
        await self._health.set(LOGS_SERVICE, health_pb2.HealthCheckResponse.SERVING)
        await self._health.set(SESSION_SERVICE, health_pb2.HealthCheckResponse.SERVING)

        # the REST lookups, the web page and the Jaeger-compatible API (/api) are always served
        bad_http_log.install()
        app = create_app(ingestor_for=self._ingestor_for, log_ingest_for=self._log_ingest_for,
                         gateway=self._gateway, ready_probe_key=self.store.keys.ready_probe(), access=self.access,
                         max_request_bytes=s.max_request_bytes, inflight=self.inflight,
                         body_timeout_s=s.body_timeout, sample_metrics=self.tenancy.sample_usage,
                         metrics_public=s.metrics_public,
                         extra_routes=[lookup_routes(self.access, self.tenancy),
                                       page_routes(self.access, self.tenancy, builder),
                                       jaeger_routes(self.access, self._jaeger_query_for),
                                       *self.extra_http_routes])
        install_host_check(app, s.http_listen[0], s.allowed_hosts)  # DNS rebinding; serve/host_check.py
        install_cors(app, s.cors_origins)  # off unless --cors-origins; serve/cors.py
        # keepalive_timeout runs from a connection's start (aiohttp 3.14.4 on) and from each answer
        # until the next request head is complete: aiohttp's bound on idle connections and on
        # slow headers alike
        runner = web.AppRunner(app, auto_decompress=False, shutdown_timeout=10.0, access_log=None,
                               keepalive_timeout=s.connection_idle_timeout)
        await runner.setup()
        http_host, http_port = s.http_listen
        site = web.TCPSite(runner, http_host, http_port, reuse_port=s.workers > 1)
        try:
            await site.start()
        except OSError as exc:
            await runner.cleanup()
            await server.stop(None)
            raise RuntimeError(f"cannot listen on {http_host}:{http_port} for HTTP (--http-listen): {exc}") from exc
        self._http = runner
        actual_http = site._server.sockets[0].getsockname()[:2]  # type: ignore[union-attr]
        self.listening = Listening(grpc=(host, bound), http=(http_host, actual_http[1]), span_reader=self.span_reader)
        return self.listening

    async def stop(self, grace: float = 10.0) -> None:
        """Stop taking requests, finish in-flight ones within ``grace`` seconds, drain forwarding
        (within ``grace`` seconds more), close Redis."""
        if self._health is not None:
            await self._health.enter_graceful_shutdown()
        tasks = []
        if self._grpc is not None:
            tasks.append(self._grpc.stop(grace))
        if self._http is not None:
            tasks.append(self._http.cleanup())
        await asyncio.gather(*tasks, return_exceptions=True)
        self._grpc = self._http = None
        if self.tenancy is not None:
            await self.tenancy.stop(grace)
            self.forwarding = None
        if self._gateway is not None:
            await self._gateway.close()
            self._gateway = None
            self.store = None

    def reload_tenants(self) -> bool:
        """Read the ``--tenants`` file again (SIGHUP) and use its tenants, tokens and quotas from
        the next request on; a file that does not load is logged and the tenants in use are kept.
        True when the new file is in use."""
        path = self.settings.tenants_file
        if path is None:
            log.warning("SIGHUP: no --tenants file to read again (single tokens are read at start only)")
            return False
        try:
            tenants = load_tenants(path)
        except TenantsError as exc:
            log.error("SIGHUP: the tenants file was not reloaded, the tenants in use stay: %s", exc)
            return False
        self.access.replace(tenants)
        if self.tenancy is not None:
            self.tenancy.replace_tenants(self.access.tenants)
        for warning in guessable_token_warnings(tenants):
            log.warning("%s", warning)
        log.warning("SIGHUP: tenants reloaded from %s: %s", path, ", ".join(sorted(self.access.tenants)))
        return True

    async def run_until_signal(self, on_ready: Callable[[Listening], None] | None = None) -> None:
        """Start, call ``on_ready``, serve until SIGTERM or SIGINT, then stop cleanly (the
        signal handlers are in place before anyone is told the service is ready); SIGHUP reads
        the tenants file again (:meth:`reload_tenants`)."""
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        loop.add_signal_handler(signal.SIGHUP, self.reload_tenants)
        listening = await self.start()
        if on_ready is not None:
            on_ready(listening)
        try:
            await stop.wait()
        finally:
            log.info("draining in-flight requests")
            await self.stop()
