"""``/readyz`` follows each condition: 503 naming it while Redis refuses writes or does not
answer, 200 as soon as it takes writes again. Lookups answer while Redis can be read, and
503 with Retry-After while it cannot."""

from __future__ import annotations

import urllib.error
import urllib.request

from tests.faults.harness import Workload, body_of, conditions, get_json, http_export, wait_until
from tests.support import RunningService


def lookup(url: str) -> tuple[int, str | None]:
    """Status and Retry-After of a GET."""
    try:
        with urllib.request.urlopen(url, timeout=20) as response:
            return response.status, response.headers.get("Retry-After")
    except urllib.error.HTTPError as failure:
        return failure.code, failure.headers.get("Retry-After")


def test_readyz_and_lookups_follow_every_condition(faulty_redis, tmp_path):
    redis_ = faulty_redis
    with RunningService(redis_.url, redis_timeout="0.5s") as service:
        def ready() -> tuple[int, dict]:
            return get_json(service.http_url + "/readyz")

        assert ready() == (200, {"status": "ready", "redis": "ok"})
        assert http_export(service.http_url, body_of(Workload("ready").batch([1]))).ok
        for code, condition in conditions(redis_, tmp_path).items():
            condition.refuse()
            try:
                assert ready() == (503, {"status": "not ready", "redis": condition.ready_state,
                                         "condition": code}), code
                # lookups go on while Redis can be read, else they are retryable too
                listing = lookup(service.http_url + "/v1/sessions")
                assert listing == ((200, None) if condition.readable else (503, "2")), (code, listing)
            finally:
                condition.recover()
            wait_until(lambda: ready()[0] == 200, 10, f"/readyz to answer 200 after {code}")
            assert ready() == (200, {"status": "ready", "redis": "ok"})

        redis_.server.stop()  # Redis is gone
        try:
            assert ready() == (503, {"status": "not ready", "redis": "unreachable", "condition": "connection"})
        finally:
            redis_.server.start()
        wait_until(lambda: ready()[0] == 200, 10, "/readyz to answer 200 after a restart")
