"""Fixtures of the hostile-input suite."""

from __future__ import annotations

import pytest

from otel_sessions.exporter.store.embedded_redis import EmbeddedRedis
from tests.support import RunningService


@pytest.fixture()
def private_service(tmp_path):
    """A service on a redis-server of its own, killed afterwards: a request that keeps Redis
    busy cannot reach the tests after it."""
    server = EmbeddedRedis(tmp_path / "redis", port=None, persistent=False)
    server.start()
    running = RunningService(server.url, redis_timeout="30s").start()  # a 70,000-trace write on a busy machine
    try:
        yield running
    finally:
        server.kill()
        try:
            running.stop()
        finally:
            server.stop()
