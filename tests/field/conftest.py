"""Two receivers (two services, no shared memory) on the suite's Redis, kept for a module.

Tests using them name their own sessions (unique per test), so the database is not flushed
between them."""

from __future__ import annotations

import pytest

from tests.support import RunningService


@pytest.fixture(scope="module")
def receivers(redis_server):
    with RunningService(redis_server.url) as first, RunningService(redis_server.url) as second:
        yield first, second


@pytest.fixture()
def session_id(request) -> str:
    """A session id of this test alone (the node id, shortened to fit the id rules)."""
    import hashlib

    return "sess-" + hashlib.blake2b(request.node.nodeid.encode(), digest_size=8).hexdigest()
