"""Fixtures of the fault tests: each test abuses a redis-server of its own (never the suite's
shared one, never port 6379) and always stops it, continued first if it was left stopped."""

from __future__ import annotations

import pytest

from tests.faults.harness import FaultyRedis


@pytest.fixture()
def faulty_redis(tmp_path):
    server = FaultyRedis(tmp_path / "redis").start()
    try:
        yield server
    finally:
        server.close()
