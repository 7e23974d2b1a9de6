"""``--metrics-public``: /metrics without a token while every other route needs one."""

from __future__ import annotations

import urllib.error
import urllib.request

from otel_sessions.exporter.serve.settings import Settings
from tests.support import RunningService


def _status(url: str, token: str | None = None) -> int:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code


def test_metrics_need_the_metrics_scope_unless_public(redis_url):
    with RunningService(redis_url, ingest_token="in-7c1", query_token="q-7c1") as closed:
        assert _status(closed.http_url + "/metrics") == 401
        assert _status(closed.http_url + "/metrics", "in-7c1") == 403  # ingest scope only
        assert _status(closed.http_url + "/metrics", "q-7c1") == 200
    with RunningService(redis_url, ingest_token="in-7c1", query_token="q-7c1", metrics_public=True) as public:
        assert _status(public.http_url + "/metrics") == 200
        assert _status(public.http_url + "/v1/sessions") == 401  # nothing else opens


def test_the_setting_from_flag_and_env():
    assert Settings.resolve({}, env={}).metrics_public is False
    assert Settings.resolve({"metrics_public": True}, env={}).metrics_public is True
    assert Settings.resolve({}, env={"OTEL_SESSIONS_METRICS_PUBLIC": "true"}).metrics_public is True
