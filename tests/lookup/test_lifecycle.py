"""Delete, expiry, bounded candidate sets and the query token, through the real service."""

from __future__ import annotations

import dataclasses
import time

import pytest
import redis

from otel_sessions.exporter.lookup.params import SORT_KEYS
from otel_sessions.exporter.store.keys import INDEX_SHARDS, Keys, session_shard
from otel_sessions.exporter.tenants import DEFAULT_TENANT
from tests import dataset
from tests.support import RunningService, get, http


def ids(body) -> list[str]:
    return [s["id"] for s in body["data"]]


@pytest.fixture()
def loaded_fresh(service):
    service.base = dataset.base_ns()
    dataset.emit(service.http_url, service.base)
    return service


def _every_list(service) -> set[str]:
    """Ids seen by every way of listing that could show sess-1 (user u-1, thread t-1, worker, failed...)."""
    seen: set[str] = set()
    for path in ("/v1/sessions", "/v1/sessions?user_id=u-1", "/v1/sessions?thread_id=t-1",
                 "/v1/sessions?status=failed", "/v1/sessions?service=worker", "/v1/sessions?name=Refund",
                 "/v1/sessions?metadata.plan=free", "/v1/users/u-1/sessions", "/v1/threads/t-1",
                 *(f"/v1/sessions?sort_by={k}&sort_order={o}" for k in SORT_KEYS for o in ("asc", "desc"))):
        seen |= set(ids(get(service, path)))
    return seen


def test_delete_removes_the_session_from_every_list(loaded_fresh):
    svc = loaded_fresh
    assert "sess-1" in _every_list(svc)
    status, body, _ = http("DELETE", svc.http_url + "/v1/sessions/sess-1")
    assert status == 204 and body is None
    assert "sess-1" not in _every_list(svc)
    assert get(svc, "/v1/sessions")["total"] == len(dataset.PLAN) - 1
    assert get(svc, "/v1/sessions?user_id=u-1")["total"] == 2
    assert ids(get(svc, "/v1/threads/t-1")) == ["sess-0"]
    get(svc, "/v1/sessions/sess-1", expect=404)
    get(svc, "/v1/sessions/sess-1/spans", expect=404)
    status, body, _ = http("DELETE", svc.http_url + "/v1/sessions/sess-1")
    assert status == 404 and "sess-1" in body["error"]
    # no key of the session is left
    client = redis.Redis.from_url(svc.redis_url)
    assert not any(client.exists(key) for key in Keys().session("sess-1"))
    for shard in range(INDEX_SHARDS):
        assert client.zscore(Keys().seen(shard), "sess-1") is None


def test_sessions_whose_summary_is_gone_are_never_listed_and_leave_the_indexes(loaded_fresh):
    """A summary that disappeared (expired or evicted) while its index entries live on."""
    svc = loaded_fresh
    client = redis.Redis.from_url(svc.redis_url)
    keys = Keys()
    for sid in ("sess-2", "sess-4"):
        client.delete(*keys.session(sid))
    gone = {"sess-2", "sess-4"}
    for path in ("/v1/sessions", "/v1/sessions?sort_by=cost", "/v1/sessions?user_id=u-2",
                 "/v1/sessions?thread_id=t-2", "/v1/sessions?status=escalated", "/v1/threads/t-2",
                 "/v1/users/u-1/sessions", "/v1/sessions?name=billing"):
        body = get(svc, path)
        assert not gone & set(ids(body)), path
    assert get(svc, "/v1/sessions")["total"] == len(dataset.PLAN) - 2
    assert ids(get(svc, "/v1/threads/t-2")) == ["sess-3"]
    # the dangling entries were removed from the indexes they were found in
    for sid in gone:
        shard_keys = keys.shard_indexes(session_shard(sid))
        assert all(client.zscore(key, sid) is None for key in shard_keys)


def test_expired_sessions_are_never_listed(redis_url):
    with RunningService(redis_url, retention="3s") as svc:
        base = dataset.base_ns()
        dataset.emit(svc.http_url, base)
        assert get(svc, "/v1/sessions")["total"] == len(dataset.PLAN)
        client = redis.Redis.from_url(redis_url)
        deadline = time.monotonic() + 30
        while any(client.exists(Keys().summary(p.id)) for p in dataset.PLAN):
            assert time.monotonic() < deadline, "keys did not expire"
            time.sleep(0.1)
        body = get(svc, "/v1/sessions")
        assert body["data"] == [] and body["total"] == 0
        assert get(svc, "/v1/sessions?status=active")["data"] == []
        get(svc, "/v1/threads/t-1", expect=404)
        get(svc, "/v1/users/u-1/sessions", expect=404)
        # a new session in the same store is listed alone
        dataset.emit(svc.http_url, base, (dataclasses.replace(dataset.PLAN[0], id="sess-new", turns=1),))
        assert ids(get(svc, "/v1/sessions")) == ["sess-new"]


def test_unindexed_filters_over_a_bounded_candidate_set_say_partial(loaded_fresh):
    svc = loaded_fresh
    queries = svc.call(svc.service.tenancy.get(DEFAULT_TENANT)).queries
    queries.max_candidates = 3
    try:
        body = get(svc, "/v1/sessions?service=worker")  # newest 3 by start: sess-5, sess-4, sess-3
        assert body["partial"] is True and ids(body) == ["sess-5", "sess-3"] and body["total"] == 2
        assert get(svc, "/v1/sessions")["partial"] is False  # index-served: exact
        body = get(svc, "/v1/sessions?service=worker&sort_by=cost&sort_order=asc")  # 5, 3, 1 cheapest
        assert body["partial"] is True and ids(body) == ["sess-5", "sess-3", "sess-1"]
        body = get(svc, "/v1/sessions?user_id=u-2&service=worker")  # 2 candidates <= 3: exact
        assert body["partial"] is False and ids(body) == ["sess-3"]
    finally:
        queries.max_candidates = 2000


def test_query_token_guards_the_lookups(redis_url):
    with RunningService(redis_url, query_token="s3cret", ingest_token="in") as svc:
        dataset.emit(svc.http_url, dataset.base_ns(), headers={"Authorization": "Bearer in"})
        for path in ("/v1/sessions", "/v1/sessions/sess-0", "/v1/threads/t-1", "/v1/users/u-1/sessions",
                     "/v1/sessions/sess-0/spans"):
            status, body, headers = http("GET", svc.http_url + path)
            assert status == 401 and "token" in body["error"] and headers.get("WWW-Authenticate") == "Bearer"
        status, body, _ = http("GET", svc.http_url + "/v1/sessions", headers={"Authorization": "Bearer s3cret"})
        assert status == 200 and body["total"] == len(dataset.PLAN)
        assert http("GET", svc.http_url + "/v1/sessions", headers={"Authorization": "Bearer wrong"})[0] == 401
        # the ingest token reads nothing: 403
        assert http("GET", svc.http_url + "/v1/sessions", headers={"Authorization": "Bearer in"})[0] == 403
        assert http("GET", svc.http_url + "/openapi.json")[0] == 200  # the description is public


def test_merge_of_shards_pages_exactly_over_many_sessions(service):
    """400 sessions over the 16 shards: every small page equals the slice of the full sort."""
    import random

    from bench.lookup import _group, _template_spans
    from otel_sessions.exporter.ingest.groups import Batch

    async def fill() -> None:
        rng = random.Random(4)
        template = _template_spans()
        batch = Batch()
        now_us = int(time.time() * 1e6)
        for i in range(400):
            session_id, group = _group(i, rng, template, now_us, users=7)
            batch.sessions[session_id] = group
        await service.service.ingestor.write(batch)

    service.call(fill())
    for key, field in (("cost", "cost_usd"), ("start", "start_time"), ("spans", "span_count"),
                       ("tokens", "total_tokens")):
        for order in ("asc", "desc"):
            full = get(service, f"/v1/sessions?sort_by={key}&sort_order={order}&limit=500")
            assert full["total"] == 400 and len(full["data"]) == 400
            values = [s[field] for s in full["data"]]
            assert values == sorted(values, reverse=order == "desc")
            for offset in (0, 7, 133, 390, 399):
                page = get(service, f"/v1/sessions?sort_by={key}&sort_order={order}&limit=7&offset={offset}")
                assert ids(page) == ids(full)[offset:offset + 7]
    user = get(service, "/v1/sessions?user_id=user-0003&sort_by=cost&limit=500")
    assert user["total"] == len([i for i in range(400) if i % 7 == 3])


def test_a_deleted_sessions_spans_leave_the_jaeger_api_its_names_stay_as_documented(service):
    from pathlib import Path

    from tests.support import send, tracer, wait_until

    t, memory = tracer("deleting-app")
    with t.start_as_current_span("secret operation", attributes={"session.id": "sess-gone"}) as span:
        trace_id = f"{span.get_span_context().trace_id:032x}"
    send(service.grpc_endpoint, memory.get_finished_spans())
    operations = "/api/services/deleting-app/operations"
    wait_until(lambda: get(service, operations)["data"] == ["secret operation"], message="operation listed")
    assert http("DELETE", service.http_url + "/v1/sessions/sess-gone")[0] == 204
    assert get(service, '/api/traces?service=deleting-app&tags={"session.id":"sess-gone"}')["data"] == []
    assert get(service, "/api/traces?service=deleting-app")["data"] == []
    assert get(service, "/api/sessions/sess-gone/trace", expect=404)
    assert get(service, f"/v1/traces/{trace_id}", expect=404)
    # names are per service within the retention, not records of sessions: still listed
    assert get(service, operations)["data"] == ["secret operation"]
    interface = (Path(__file__).resolve().parents[2] / "docs" / "interface.md").read_text()
    assert "Deleting\na session removes its spans and traces from every answer, but its service and span names stay\nlisted" in interface
