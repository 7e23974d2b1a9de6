"""Fixtures of the lookup tests: a service loaded once per module with the dataset."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest

from tests.lookups import dataset
from tests.support import RunningService


@pytest.fixture(scope="module")
def loaded(redis_server):
    """A running service on a flushed Redis holding :data:`dataset.PLAN`; read-only tests share it."""
    import redis

    client = redis.Redis.from_url(redis_server.url)
    client.flushall()
    client.close()
    base = dataset.base_ns()
    with RunningService(redis_server.url) as service:
        dataset.emit(service.http_url, base)
        service.base = base
        yield service


def http(method: str, url: str, headers: dict | None = None) -> tuple[int, dict | bytes | None, dict]:
    """One request; returns (status, parsed JSON or raw bytes or None, headers)."""
    request = urllib.request.Request(url, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            status, body, head = response.status, response.read(), dict(response.headers)
    except urllib.error.HTTPError as exc:
        status, body, head = exc.code, exc.read(), dict(exc.headers)
    if not body:
        return status, None, head
    if head.get("Content-Type", "").startswith("application/json"):
        return status, json.loads(body), head
    return status, body, head


def get(service, path: str, expect: int = 200, **kwargs):
    status, body, _headers = http("GET", service.http_url + path, **kwargs)
    assert status == expect, (path, status, body)
    return body
