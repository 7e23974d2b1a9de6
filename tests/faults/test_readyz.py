"""``/readyz`` follows each condition: 503 naming it while Redis refuses writes or does not
answer, 200 as soon as it takes writes again."""

from __future__ import annotations

from tests.faults.harness import conditions, get_json, wait_until
from tests.support import RunningService


def test_readyz_follows_every_condition(faulty_redis, tmp_path):
    redis_ = faulty_redis
    with RunningService(redis_.url, redis_timeout="0.5s") as service:
        def ready() -> tuple[int, dict]:
            return get_json(service.http_url + "/readyz")

        assert ready() == (200, {"status": "ready", "redis": "ok"})
        for code, condition in conditions(redis_, tmp_path).items():
            condition.refuse()
            try:
                assert ready() == (503, {"status": "not ready", "redis": condition.ready_state,
                                         "condition": code}), code
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
