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
from otel_sessions.exporter.ingest.grouping import BatchBuilder
from otel_sessions.exporter.ingest.ingestor import Ingestor
from otel_sessions.exporter.ingest.otlp_grpc import TRACE_SERVICE, trace_service_handler
from otel_sessions.exporter.ingest.pricing import PriceTable
from otel_sessions.exporter.jaeger.index import JaegerIndex
from otel_sessions.exporter.jaeger.routes import jaeger_routes
from otel_sessions.exporter.serve.app import create_app
from otel_sessions.exporter.serve.grpc_service import SESSION_SERVICE, add_session_service
from otel_sessions.exporter.serve.rest import lookup_routes
from otel_sessions.exporter.serve.settings import Settings
from otel_sessions.exporter.store.gateway import RedisGateway
from otel_sessions.exporter.store.redis_client import connect
from otel_sessions.exporter.store.service_index import ServiceIndex
from otel_sessions.exporter.store.sessions import SessionStore

__all__ = ["Service", "Listening"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Listening:
    grpc: tuple[str, int]
    http: tuple[str, int]


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
        self._grpc: grpc.aio.Server | None = None
        self._http: web.AppRunner | None = None
        self._health: health.aio.HealthServicer | None = None
        self.forwarding: Forwarding | None = None
        self._jaeger_index: JaegerIndex | None = None
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
        self.ingestor = Ingestor(self.store, BatchBuilder(PriceTable.load(s.prices), max_id_length=s.max_id_length))
        service_index = ServiceIndex(self.store.gateway, self.store.keys, self.store.retention_ms)
        self._jaeger_index = JaegerIndex(service_index)
        self.ingestor.after_store.append(self._jaeger_index)
        if s.forward:
            self.forwarding = Forwarding(s.forward_settings(), self.store)
            await self.forwarding.start()
            self.ingestor.after_store.append(self.forwarding)

        reuse_port = 1 if s.workers > 1 else 0
        server = grpc.aio.server(options=[
            ("grpc.max_receive_message_length", s.max_request_bytes),
            ("grpc.max_send_message_length", s.max_request_bytes),
            ("grpc.so_reuseport", reuse_port),
        ])
        server.add_generic_rpc_handlers((trace_service_handler(self.ingestor, self.ingest_guard),))
        add_session_service(server, self.store, self.query_guard)
        self._health = health.aio.HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(self._health, server)
        reflection.enable_server_reflection(
            (TRACE_SERVICE, SESSION_SERVICE, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
             reflection.SERVICE_NAME),
            server)
        host, port = s.grpc_listen
        bound = server.add_insecure_port(f"[{host}]:{port}" if ":" in host else f"{host}:{port}")
        if bound == 0:
            raise RuntimeError(f"cannot listen on {host}:{port} for gRPC (--grpc-listen): address in use?")
        await server.start()
        self._grpc = server
        await self._health.set("", health_pb2.HealthCheckResponse.SERVING)
        await self._health.set(TRACE_SERVICE, health_pb2.HealthCheckResponse.SERVING)
        await self._health.set(SESSION_SERVICE, health_pb2.HealthCheckResponse.SERVING)

        # the REST lookups, the web page and the Jaeger-compatible API (/api) are always served
        app = create_app(self.ingestor, max_request_bytes=s.max_request_bytes, ingest_guard=self.ingest_guard,
                         extra_routes=[lookup_routes(self.query_guard, self.store),
                                       jaeger_routes(self.query_guard, self.store, service_index),
                                       *self.extra_http_routes])
        runner = web.AppRunner(app, auto_decompress=False, shutdown_timeout=10.0, access_log=None)
        await runner.setup()
        http_host, http_port = s.http_listen
        site = web.TCPSite(runner, http_host, http_port, reuse_port=bool(reuse_port))
        try:
            await site.start()
        except OSError as exc:
            await runner.cleanup()
            await server.stop(None)
            raise RuntimeError(f"cannot listen on {http_host}:{http_port} for HTTP (--http-listen): {exc}") from exc
        self._http = runner
        actual_http = site._server.sockets[0].getsockname()[:2]  # type: ignore[union-attr]
        self.listening = Listening(grpc=(host, bound), http=(http_host, actual_http[1]))
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
            await self.forwarding.stop(grace)
            self.forwarding = None
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
