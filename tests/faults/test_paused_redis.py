"""Redis stops answering for longer than the service's Redis timeout in the middle of writes,
then comes back: ``CLIENT PAUSE <ms> ALL`` (commands of a client that gave up are never run)
and SIGSTOP / SIGCONT of the redis-server process (commands already sent run when it
continues, after the service gave up on them: "a write that lands after the timeout").

In every round the stock exporters stream while Redis stops; they get retryable answers,
retry, and in the end every session holds exactly its spans and is listed everywhere."""

from __future__ import annotations

import random
import time

import pytest

from tests.faults.harness import (
    Senders,
    Workload,
    assert_retryable,
    assert_stored_exactly_once,
    assert_whole_or_absent,
    body_of,
    counts_delta,
    get_json,
    http_export,
    readyz,
    request_counts,
    session_state,
    xfail_if_unindexed,
)
from tests.support import RunningService

ROUNDS = 5
TIMEOUT_S = 0.5  # --redis-timeout of the service
FAULT_S = 1.5  # how long Redis stops answering: three timeouts


@pytest.mark.parametrize("fault", ["client-pause", "sigstop"])
def test_redis_stopping_mid_write_loses_and_doubles_nothing(faulty_redis, fault):
    redis_ = faulty_redis
    workload = Workload(f"pause-{fault}")
    rng = random.Random(7)
    late_landings = 0
    unindexed: set[str] = set()

    def stop_redis() -> None:
        if fault == "client-pause":
            redis_.admin.execute_command("CLIENT", "PAUSE", int(FAULT_S * 1000), "ALL")
        else:
            redis_.sigstop()

    def resume_redis() -> None:
        if fault == "sigstop":
            redis_.sigcont()

    with RunningService(redis_.url, redis_timeout=f"{TIMEOUT_S}s") as service:
        assert service.store.gateway.client.connection_pool.connection_kwargs["socket_timeout"] == TIMEOUT_S
        before = request_counts(service.http_url)
        next_session = 0
        for round_ in range(ROUNDS):
            # one request alone while Redis is stopped: answered retryably within the timeout
            probe = body_of(workload.batch([1000 + round_]))
            stop_redis()
            started = time.monotonic()
            answer = http_export(service.http_url, probe)
            assert_retryable(answer)
            assert "(timeout)" in answer.message and time.monotonic() - started < TIMEOUT_S + 1.0
            time.sleep(max(0.0, FAULT_S - (time.monotonic() - started)))
            resume_redis()
            time.sleep(0.2)
            # its session write may have run after the service gave up (SIGSTOP: it does when
            # Redis continues); then the session exists but is not listed until the retry
            state = session_state(redis_.admin, workload.session_id(1000 + round_))
            if state["exists"]:
                late_landings += 1
                assert not state["seen"]
            assert http_export(service.http_url, probe).ok  # the retry of the same request

            # the exporters stream; Redis stops in the middle of it
            batches = []
            for _ in range(2):
                plan = []
                for _ in range(8):
                    plan.append(workload.batch([next_session, next_session + 1, rng.randrange(next_session + 2)]))
                    next_session += 2
                batches.append(plan)
            senders = Senders(service, [("grpc", batches[0]), ("http", batches[1])], timeout=30, gap=0.02).start()
            time.sleep(rng.uniform(0.05, 0.3))
            stop_redis()
            started = time.monotonic()
            assert get_json(service.http_url + "/readyz") == (  # its write probe times out
                503, {"status": "not ready", "redis": "unreachable", "condition": "timeout"})
            time.sleep(max(0.0, FAULT_S - (time.monotonic() - started)))
            resume_redis()
            senders.join(40)
            assert senders.all_succeeded(), senders.results
            assert readyz(service.http_url) == 200
            assert_whole_or_absent(redis_.admin, workload)
            assert_stored_exactly_once(service.http_url, redis_.admin, workload, unindexed)

        delta = counts_delta(before, request_counts(service.http_url))
        assert delta.get(("http", "unavailable"), 0) >= ROUNDS and not any(o == "internal" for _t, o in delta), delta
        if fault == "sigstop":  # the known case: a write that landed after the timeout, indexed by the retry
            assert late_landings >= 1
    xfail_if_unindexed(unindexed)
