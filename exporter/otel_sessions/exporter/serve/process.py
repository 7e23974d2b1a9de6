"""One server process: the gRPC port and the HTTP port over one session store.

:class:`Service` owns the Redis client, the store, both servers and their shutdown:
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

from otel_sessions.exporter.auth import BearerGuard
from otel_sessions.exporter.forward.forwarding import Forwarding
from otel_sessions.exporter.forward.logs import LogForwarding
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
from otel_sessions.exporter.jaeger.index import JaegerIndex
from otel_sessions.exporter.jaeger.routes import jaeger_routes
from otel_sessions.exporter.metrics import METRICS
from otel_sessions.exporter.serve.app import create_app
from otel_sessions.exporter.serve.cors import install_cors
from otel_sessions.exporter.serve.grpc_service import SESSION_SERVICE, add_session_service
from otel_sessions.exporter.serve.host_check import install_host_check
from otel_sessions.exporter.serve.page import page_routes
from otel_sessions.exporter.serve.rest import lookup_routes
from otel_sessions.exporter.serve.settings import Settings
from otel_sessions.exporter.store.gateway import RedisGateway
from otel_sessions.exporter.store.redis_client import connect
from otel_sessions.exporter.store.service_index import ServiceIndex
from otel_sessions.exporter.store.sessions import SessionStore

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
        self.ingest_guard = BearerGuard(settings.ingest_token, "--ingest-token")
        self.query_guard = BearerGuard(settings.query_token, "--query-token")
        self.extra_http_routes = list(extra_http_routes)
        self.store: SessionStore | None = None
        self.ingestor: Ingestor | None = None
        self.log_ingest: LogIngest | None = None
        self._grpc: grpc.aio.Server | None = None
        self._http: web.AppRunner | None = None
        self._health: health.aio.HealthServicer | None = None
        self.forwarding: Forwarding | None = None
        self.log_forwarding: LogForwarding | None = None
        self._jaeger_index: JaegerIndex | None = None
        #: request bytes held by both transports together (--max-inflight-bytes)
        self.inflight = InflightBytes(settings.max_inflight_bytes)
        self.listening: Listening | None = None

    async def _connect(self, timeout: float = 15.0) -> SessionStore:
        s = self.settings
        client = connect(self.redis_url, cluster=s.redis_cluster, socket_timeout=s.redis_timeout)
        store = SessionStore(RedisGateway(client), s.store_settings())
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            try:
                await store.load_scripts()
                return store
            except Exception as exc:  # connection refused, loading, auth...
                if loop.time() > deadline:
                    await store.close()
                    raise RuntimeError(f"cannot reach Redis at {s.redacted_redis_url or 'the embedded server'}: {exc}") from exc
                await asyncio.sleep(0.25)

    async def start(self) -> Listening:
        s = self.settings
        self.store = await self._connect()
        builder = batch_builder(PriceTable.load(s.prices), max_id_length=s.max_id_length)
        self.ingestor = Ingestor(self.store, builder, redactor=s.redactor())
        self.span_reader = (scanner_status()[1] if self.ingestor.reads_bytes or not builder.native
                            else "pure-Python path (redaction needs parsed messages)")
        METRICS.ingest_native.set(1 if self.ingestor.reads_bytes else 0)
        log.info("OTLP spans are read by the %s", self.span_reader)
        self.log_ingest = LogIngest(self.ingestor)
        service_index = ServiceIndex(self.store.gateway, self.store.keys, self.store.retention_ms)
        self._jaeger_index = JaegerIndex(service_index)
        self.ingestor.after_store.append(self._jaeger_index)
        if s.forward:
            self.forwarding = Forwarding(s.forward_settings(), self.store)
            await self.forwarding.start()
            self.ingestor.after_store.append(self.forwarding)
            self.log_forwarding = LogForwarding(s.forward_settings(), self.forwarding.sessions)
            await self.log_forwarding.start()
            self.log_ingest.after_store.append(self.log_forwarding)

        server = grpc.aio.server(options=grpc_server_options(s))
        server.add_generic_rpc_handlers((trace_service_handler(self.ingestor, self.ingest_guard, self.inflight),
                                         logs_service_handler(self.log_ingest, self.ingest_guard, self.inflight)))
        add_session_service(server, self.store, self.query_guard)
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
        app = create_app(self.ingestor, max_request_bytes=s.max_request_bytes, ingest_guard=self.ingest_guard,
                         inflight=self.inflight, body_timeout_s=s.body_timeout, log_ingest=self.log_ingest,
                         extra_routes=[lookup_routes(self.query_guard, self.store),
                                       page_routes(self.query_guard, self.ingestor.builder),
                                       jaeger_routes(self.query_guard, self.store, service_index),
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
        if self.forwarding is not None:
            await asyncio.gather(self.forwarding.stop(grace),
                                 *([self.log_forwarding.stop(grace)] if self.log_forwarding is not None else []))
            self.forwarding = self.log_forwarding = None
        if self._jaeger_index is not None:
            await self._jaeger_index.stop()
            self._jaeger_index = None
        if self.store is not None:
            await self.store.close()
            self.store = None

    async def run_until_signal(self, on_ready: Callable[[Listening], None] | None = None) -> None:
        """Start, call ``on_ready``, serve until SIGTERM or SIGINT, then stop cleanly (the
        signal handlers are in place before anyone is told the service is ready)."""
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        listening = await self.start()
        if on_ready is not None:
            on_ready(listening)
        try:
            await stop.wait()
        finally:
            log.info("draining in-flight requests")
            await self.stop()
