"""Known failures of the hostile suite, each with its cause, marked strict ``xfail``: the
assertions stay as they are (they state the right behaviour), the suite stays green, and a
case that starts passing fails as XPASS so its entry here is removed.

Every cause below lies in the store's write script or the Jaeger-compatible API's JSON
(``jaeger/``), not in the transports.
"""

from __future__ import annotations

import re

import pytest

from otel_sessions.exporter.store.embedded_redis import EmbeddedRedis
from tests.support import RunningService

_JAEGER_NOT_FINITE = ("the span keeps its double attribute (a NaN or infinite token count or cost), and the "
                      "Jaeger-compatible API writes that tag as a bare NaN / Infinity: not JSON")

#: test name pattern (re.fullmatch) -> why it fails today
KNOWN_FAILURES: dict[str, str] = {
    r"test_a_hostile_number\[(input_tokens|output_tokens|cost)-double-(nan|inf|neg-inf)-.*\]": _JAEGER_NOT_FINITE,
    r"test_seventy_thousand_traces_in_one_session\[.*\]":
        "the write script of one session with 70,000 new traces runs for minutes (10,000: about 20 s): the "
        "request gets 503 (store timeout, which exporters retry) and Redis answers BUSY to everyone meanwhile",
    r"test_any_request_gets_no_5xx_and_lookups_stay_readable": _JAEGER_NOT_FINITE,
}


@pytest.fixture()
def private_service(tmp_path):
    """A service on a redis-server of its own, killed afterwards: a request that keeps Redis
    busy cannot reach the tests after it."""
    server = EmbeddedRedis(tmp_path / "redis", port=None, persistent=False)
    server.start()
    running = RunningService(server.url).start()
    try:
        yield running
    finally:
        server.kill()
        try:
            running.stop()
        finally:
            server.stop()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        for pattern, reason in KNOWN_FAILURES.items():
            if re.fullmatch(pattern, item.name):
                item.add_marker(pytest.mark.xfail(strict=True, reason=reason))
                break
