"""Shared fixtures: a real redis-server started by the suite on a free port, a service loaded
with the lookup dataset, real OTLP receivers downstream.

The suite never uses the machine's Redis on 6379: each session of tests starts its own
server, and each test gets a flushed database.
"""

from __future__ import annotations

import pytest

from otel_sessions.exporter.store.embedded_redis import EmbeddedRedis
from tests import dataset
from tests.support import RunningService


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> EmbeddedRedis:
    server = EmbeddedRedis(tmp_path_factory.mktemp("redis"), port=None, persistent=False)
    server.start()
    yield server
    server.stop()


@pytest.fixture()
def redis_url(redis_server: EmbeddedRedis) -> str:
    """URL of the suite's Redis, flushed before the test."""
    import redis

    client = redis.Redis.from_url(redis_server.url)
    client.flushall()
    client.close()
    return redis_server.url


@pytest.fixture()
def service(redis_url: str):
    """A running otel-sessions service (gRPC + HTTP on port 0) on the suite's Redis."""
    from tests.support import RunningService

    with RunningService(redis_url) as running:
        yield running


@pytest.fixture(scope="module")

def loaded(redis_server):
    """A running service on a flushed Redis holding :data:`dataset.PLAN`; read-only tests share it."""
    import redis

    client = redis.Redis.from_url(redis_server.url)
    client.flushall()
    client.close()
    base = dataset.base_ns()
    with RunningService(redis_server.url) as service:
        dataset.emit(service.http_url, base)
        service.base = base
        yield service


@pytest.fixture()
def grpc_downstream():
    """A real OTLP/gRPC receiver downstream of the service (forwarding tests)."""
    from tests.downstream import GrpcReceiver

    receiver = GrpcReceiver().start()
    yield receiver
    receiver.stop()


@pytest.fixture()
def http_downstream():
    """A real OTLP/HTTP receiver downstream of the service (forwarding tests)."""
    from tests.downstream import HttpReceiver

    receiver = HttpReceiver().start()
    yield receiver
    receiver.stop()
