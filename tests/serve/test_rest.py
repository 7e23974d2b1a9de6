"""Lookups over REST: GET /v1/sessions and friends return exactly the stored sessions."""

from __future__ import annotations

import urllib.parse
from datetime import datetime, timezone

import pytest
from opentelemetry.proto.trace.v1.trace_pb2 import TracesData

from tests.dataset import BY_ID, PLAN, expected, sorted_ids
from tests.support import get

SORT_KEYS = ("start", "end", "duration", "traces", "spans", "tokens", "cost")


def ids(body) -> list[str]:
    return [s["id"] for s in body["data"]]


def q(**params) -> str:
    return "/v1/sessions?" + urllib.parse.urlencode(params)


def test_list_returns_every_session_with_exact_figures(loaded):
    body = get(loaded, "/v1/sessions")
    assert body["total"] == len(PLAN) and body["limit"] == 50 and body["offset"] == 0 and body["partial"] is False
    assert ids(body) == sorted_ids(PLAN, "start", True, loaded.base)  # default: newest start first
    for session in body["data"]:
        want = expected(BY_ID[session["id"]], loaded.base)
        for key in ("user_id", "thread_id", "name", "status", "trace_count", "span_count", "input_tokens",
                    "output_tokens", "total_tokens", "services", "models", "metadata", "error_count"):
            assert session[key] == want[key], (session["id"], key)
        assert session["cost_usd"] == pytest.approx(want["cost_usd"])
        start = datetime.fromisoformat(session["start_time"].replace("Z", "+00:00"))
        assert round(start.timestamp() * 1e6) == want["start_us"]
        assert session["duration_ms"] == pytest.approx((want["end_us"] - want["start_us"]) / 1000)
        assert "traces" not in session


@pytest.mark.parametrize("key", SORT_KEYS)
@pytest.mark.parametrize("order", ["asc", "desc"])
def test_every_sort_key_in_both_orders(loaded, key, order):
    body = get(loaded, q(sort_by=key, sort_order=order))
    assert ids(body) == sorted_ids(PLAN, key, order == "desc", loaded.base)
    assert body["total"] == len(PLAN)


def test_sort_by_last_activity(loaded):
    body = get(loaded, q(sort_by="last_activity", sort_order="desc"))
    assert sorted(ids(body)) == sorted(p.id for p in PLAN)
    activity = [s["last_activity"] for s in body["data"]]
    assert activity == sorted(activity, reverse=True)


@pytest.mark.parametrize("key", ["cost", "start"])
def test_pagination_walks_the_whole_order(loaded, key):
    want = sorted_ids(PLAN, key, True, loaded.base)
    pages = [ids(get(loaded, q(sort_by=key, limit=2, offset=offset))) for offset in (0, 2, 4)]
    assert pages == [want[0:2], want[2:4], want[4:6]]


def test_pagination_edges(loaded):
    past = get(loaded, q(offset=100))
    assert past["data"] == [] and past["total"] == len(PLAN) and past["offset"] == 100
    zero = get(loaded, q(limit=0))
    assert zero["data"] == [] and zero["total"] == len(PLAN) and zero["limit"] == 0
    assert len(get(loaded, q(limit=500))["data"]) == len(PLAN)
    last = get(loaded, q(limit=4, offset=4))
    assert ids(last) == sorted_ids(PLAN, "start", True, loaded.base)[4:]


@pytest.mark.parametrize("params, parameter", [
    ({"limit": "501"}, "limit"),
    ({"limit": "-1"}, "limit"),
    ({"limit": "ten"}, "limit"),
    ({"offset": "-5"}, "offset"),
    ({"sort_by": "colour"}, "sort_by"),
    ({"sort_order": "sideways"}, "sort_order"),
    ({"status": "sleepy"}, "status"),
    ({"start_time": "yesterday"}, "start_time"),
    ({"end_time": "2025-13-45"}, "end_time"),
    ({"start_time": "2025-02-01T00:00:00Z", "end_time": "2025-01-01T00:00:00Z"}, "start_time"),
    ({"user": "u-1"}, "user"),
])
def test_bad_parameters_are_400_naming_the_parameter(loaded, params, parameter):
    body = get(loaded, q(**params), expect=400)
    assert body["parameter"] == parameter and parameter in body["error"]


@pytest.mark.parametrize("params, want", [
    ({"user_id": "u-1"}, {"sess-0", "sess-1", "sess-2"}),
    ({"user_id": "u-2"}, {"sess-3", "sess-4"}),
    ({"user_id": "nobody"}, set()),
    ({"thread_id": "t-2"}, {"sess-2", "sess-3", "sess-4"}),
    ({"thread_id": "t-2", "user_id": "u-1"}, {"sess-2"}),
    ({"name": "billing"}, {"sess-0", "sess-2", "sess-4"}),
    ({"name": "ILL"}, {"sess-0", "sess-2", "sess-4"}),
    ({"name": "#3"}, {"sess-3"}),
    ({"status": "failed"}, {"sess-1"}),
    ({"status": "completed"}, {"sess-0"}),
    ({"status": "escalated"}, {"sess-2"}),
    ({"status": "active"}, {"sess-3", "sess-4", "sess-5"}),
    ({"status": "failed,escalated"}, {"sess-1", "sess-2"}),
    ({"status": "abandoned"}, set()),
    ({"service": "worker"}, {"sess-1", "sess-3", "sess-5"}),
    ({"service": "web-app"}, {"sess-0", "sess-2", "sess-4"}),
    ({"model": "claude-3-5-sonnet-20241022"}, {"sess-3", "sess-4", "sess-5"}),
    ({"model": "gpt-4o"}, {"sess-0", "sess-1", "sess-2"}),
    ({"metadata.plan": "pro"}, {"sess-0", "sess-2", "sess-4"}),
    ({"metadata.plan": "pro", "metadata.region": "eu"}, {"sess-0"}),
    ({"metadata.region": "us"}, set()),
    ({"user_id": "u-2", "service": "web-app"}, {"sess-4"}),
    ({"thread_id": "t-1", "status": "failed", "model": "gpt-4o"}, {"sess-1"}),
])
def test_filters(loaded, params, want):
    body = get(loaded, q(**params))
    assert set(ids(body)) == want and body["total"] == len(want) and body["partial"] is False
    # the filtered result keeps the requested order
    assert ids(body) == [i for i in sorted_ids(PLAN, "start", True, loaded.base) if i in want]


@pytest.mark.parametrize("key", ["cost", "spans", "duration"])
def test_filters_keep_every_sort_order(loaded, key):
    for order in ("asc", "desc"):
        body = get(loaded, q(user_id="u-1", sort_by=key, sort_order=order))
        assert ids(body) == sorted_ids([BY_ID[i] for i in ("sess-0", "sess-1", "sess-2")], key, order == "desc",
                                       loaded.base)
        body = get(loaded, q(service="worker", sort_by=key, sort_order=order, limit=2, offset=1))
        workers = sorted_ids([BY_ID[i] for i in ("sess-1", "sess-3", "sess-5")], key, order == "desc", loaded.base)
        assert ids(body) == workers[1:3] and body["total"] == 3


def _iso(base_ns: int, offset_s: int) -> str:
    return datetime.fromtimestamp(base_ns / 1e9 + offset_s, tz=timezone.utc).isoformat().replace("+00:00", "Z")


@pytest.mark.parametrize("sort_by", ["start", "cost"])
def test_time_ranges_bound_the_session_start(loaded, sort_by):
    base = loaded.base
    # RFC 3339: sessions that started in [60 s, 180 s] after base
    body = get(loaded, q(start_time=_iso(base, 60), end_time=_iso(base, 180), sort_by=sort_by))
    assert set(ids(body)) == {"sess-1", "sess-2", "sess-3"} and body["total"] == 3
    # unix milliseconds, open-ended on either side
    ms = base // 1_000_000
    assert set(ids(get(loaded, q(start_time=ms + 240_000, sort_by=sort_by)))) == {"sess-4", "sess-5"}
    assert set(ids(get(loaded, q(end_time=ms + 59_999, sort_by=sort_by)))) == {"sess-0"}
    assert get(loaded, q(start_time=ms + 3_600_000, sort_by=sort_by))["total"] == 0
    # combined with another filter
    both = get(loaded, q(start_time=_iso(base, 60), service="worker", sort_by=sort_by))
    assert set(ids(both)) == {"sess-1", "sess-3", "sess-5"}


def test_get_session_with_traces(loaded):
    body = get(loaded, "/v1/sessions/sess-3")
    want = expected(BY_ID["sess-3"], loaded.base)
    assert body["id"] == "sess-3" and body["span_count"] == want["span_count"]
    traces = body["traces"]
    assert [t["root_name"] for t in traces] == [f"turn {i}" for i in range(4)]
    for t in traces:
        assert len(t["trace_id"]) == 32
        assert t["span_count"] == 4 and t["error"] is False
        assert (t["input_tokens"], t["output_tokens"], t["total_tokens"]) == (70, 70, 140)
        assert t["duration_ms"] == pytest.approx(1500)
    failed = get(loaded, "/v1/sessions/sess-1")
    assert failed["traces"][0]["error"] is True and failed["traces"][0]["error_count"] == 1


def test_unknown_ids_are_404_with_a_json_message(loaded):
    for path in ("/v1/sessions/nope", "/v1/sessions/nope/spans", "/v1/threads/nope", "/v1/users/nobody/sessions"):
        body = get(loaded, path, expect=404)
        assert "nope" in body["error"] or "nobody" in body["error"]


def test_spans_as_otlp_json_and_protobuf(loaded):
    body = get(loaded, "/v1/sessions/sess-0/spans?format=otlp-json")
    spans = [s for rs in body["resourceSpans"] for ss in rs["scopeSpans"] for s in ss["spans"]]
    assert len(spans) == BY_ID["sess-0"].span_count
    assert all(len(s["traceId"]) == 32 and len(s["spanId"]) == 16 for s in spans)  # hex ids, as OTLP/JSON says
    assert {s["name"] for s in spans} == {"turn 0", "turn 1", "chat gpt-4o-2024-08-06", "execute_tool lookup_0"}
    raw = get(loaded, "/v1/sessions/sess-0/spans?format=otlp-proto")
    data = TracesData.FromString(raw)
    assert sum(len(ss.spans) for rs in data.resource_spans for ss in rs.scope_spans) == len(spans)
    assert get(loaded, "/v1/sessions/sess-0/spans")["resourceSpans"]  # otlp-json is the default
    assert get(loaded, "/v1/sessions/sess-0/spans?format=xml", expect=400)["parameter"] == "format"


def test_thread_lists_its_sessions_in_time_order(loaded):
    body = get(loaded, "/v1/threads/t-2")
    assert body["id"] == "t-2" and ids(body) == ["sess-2", "sess-3", "sess-4"] and body["total"] == 3
    assert ids(get(loaded, "/v1/threads/t-2?limit=1&offset=1")) == ["sess-3"]
    assert get(loaded, "/v1/threads/t-2?limit=501", expect=400)["parameter"] == "limit"


def test_user_sessions_with_filters(loaded):
    body = get(loaded, "/v1/users/u-1/sessions")
    assert body["id"] == "u-1" and ids(body) == ["sess-2", "sess-1", "sess-0"] and body["total"] == 3
    assert ids(get(loaded, "/v1/users/u-1/sessions?sort_by=cost&sort_order=asc")) == ["sess-1", "sess-0", "sess-2"]
    assert ids(get(loaded, "/v1/users/u-1/sessions?status=failed")) == ["sess-1"]
    assert get(loaded, "/v1/users/u-1/sessions?user_id=u-2", expect=400)["parameter"] == "user_id"


def test_openapi_describes_every_lookup_route(loaded):
    doc = get(loaded, "/openapi.json")
    assert doc["openapi"].startswith("3.")
    routes = loaded.call(_routes(loaded))
    for method, path in routes:
        assert method.lower() in doc["paths"][path], (method, path)
    params = {p["name"] for p in doc["paths"]["/v1/sessions"]["get"]["parameters"]}
    assert params >= {"limit", "offset", "user_id", "thread_id", "name", "status", "service", "model",
                      "start_time", "end_time", "sort_by", "sort_order", "metadata"}
    assert set(doc["components"]["schemas"]["Session"]["properties"]) >= set(get(loaded, "/v1/sessions/sess-0"))


async def _routes(service):
    app = service.service._http.app
    out = set()
    for resource in app.router.resources():
        info = resource.get_info()
        path = info.get("path") or info.get("formatter")
        if path not in ("/v1/traces", "/v1/logs", "/healthz", "/readyz", "/metrics"):
            for route in resource:
                if route.method != "HEAD":
                    out.add((route.method, path))
    return out


def test_web_page_is_served(loaded):
    html = get(loaded, "/")
    assert b"<html" in html.lower() and b'src="/web/app.js"' in html
    assert b"/v1/sessions" in get(loaded, "/web/session.js")

