"""client.py against a real HTTP server on port 0: replies, error messages and exit codes."""

from __future__ import annotations

import errno
import os

import pytest

from otel_sessions.exporter.cli.client import Client, ServiceError

HINT = "Is `otel-sessions serve` running? Point --server or OTEL_SESSIONS_SERVER at it."


def error_of(call) -> ServiceError:
    with pytest.raises(ServiceError) as caught:
        call()
    return caught.value


def test_get_returns_the_json_and_sends_token_and_set_params(fake):
    fake.routes[("GET", "/v1/sessions")] = (200, {"data": [{"id": "s-1"}], "total": 1})
    client = Client(fake.url + "/", token="secret")
    body = client.get("/v1/sessions", user_id="u 1", limit=5, thread_id=None, name="", offset=0)
    assert body == {"data": [{"id": "s-1"}], "total": 1}
    (request,) = fake.requests
    assert request["method"] == "GET" and request["path"] == "/v1/sessions"
    assert request["query"] == [("user_id", "u 1"), ("limit", "5"), ("offset", "0")]  # None and "" left out
    assert request["authorization"] == "Bearer secret"


def test_no_token_no_authorization_header(fake):
    fake.routes[("GET", "/v1/users/u/sessions")] = (200, {"data": []})
    assert Client(fake.url).get("/v1/users/u/sessions") == {"data": []}
    assert fake.requests[0]["authorization"] is None and fake.requests[0]["query"] == []


def test_delete(fake):
    fake.routes[("DELETE", "/v1/sessions/s-1")] = (204, None)
    assert Client(fake.url).delete("/v1/sessions/s-1") is None
    assert [(r["method"], r["path"]) for r in fake.requests] == [("DELETE", "/v1/sessions/s-1")]


def test_401_is_the_services_message_and_exit_1(fake):
    fake.routes[("GET", "/v1/sessions")] = (401, {"error": "missing or wrong bearer token (the service was "
                                                          "started with OTEL_SESSIONS_QUERY_TOKEN)"})
    exc = error_of(lambda: Client(fake.url, token="wrong").get("/v1/sessions"))
    assert str(exc) == ("missing or wrong bearer token (the service was started with OTEL_SESSIONS_QUERY_TOKEN) "
                        "(HTTP 401)")
    assert exc.exit_code == 1


def test_404_is_the_services_message_and_exit_1(fake):
    fake.routes[("GET", "/v1/sessions/nope")] = (404, {"error": "no session 'nope'"})
    exc = error_of(lambda: Client(fake.url).get("/v1/sessions/nope"))
    assert (str(exc), exc.exit_code) == ("no session 'nope' (HTTP 404)", 1)
    fake.routes[("DELETE", "/v1/sessions/nope")] = (404, {"error": "no session 'nope'"})
    exc = error_of(lambda: Client(fake.url).delete("/v1/sessions/nope"))
    assert (str(exc), exc.exit_code) == ("no session 'nope' (HTTP 404)", 1)


def test_503_is_the_services_message_and_exit_1(fake):
    fake.routes[("GET", "/v1/threads/t")] = (503, {"error": "the session store is unavailable; retry later"})
    exc = error_of(lambda: Client(fake.url).get("/v1/threads/t"))
    assert (str(exc), exc.exit_code) == ("the session store is unavailable; retry later (HTTP 503)", 1)


def test_400_is_exit_2(fake):
    fake.routes[("GET", "/v1/sessions")] = (400, {"error": "limit: at most 500", "parameter": "limit"})
    exc = error_of(lambda: Client(fake.url).get("/v1/sessions", limit=501))
    assert (str(exc), exc.exit_code) == ("limit: at most 500 (HTTP 400)", 2)


def test_error_without_a_json_message_uses_the_reason_phrase(fake):
    fake.routes[("GET", "/html")] = (502, "<html>bad gateway</html>")
    fake.routes[("GET", "/other")] = (500, {"detail": "no error field"})
    fake.routes[("GET", "/empty")] = (503, None)
    assert (str(e := error_of(lambda: Client(fake.url).get("/html"))), e.exit_code) == ("Bad Gateway (HTTP 502)", 1)
    assert str(error_of(lambda: Client(fake.url).get("/other"))) == "Internal Server Error (HTTP 500)"
    assert str(error_of(lambda: Client(fake.url).get("/empty"))) == "Service Unavailable (HTTP 503)"


def test_refused_connection_is_a_hint_about_the_server_and_exit_1(refused_url):
    refused = f"[Errno {errno.ECONNREFUSED}] {os.strerror(errno.ECONNREFUSED)}"
    for call in (lambda: Client(refused_url).get("/v1/sessions"),
                 lambda: Client(refused_url + "/").delete("/v1/sessions/x"),
                 lambda: Client(refused_url).open("GET", "/v1/sessions/x/tail", timeout=5)):
        exc = error_of(call)
        assert str(exc) == f"cannot reach the otel-sessions service at {refused_url}: {refused}. {HINT}"
        assert exc.exit_code == 1


def test_a_reply_slower_than_the_timeout_is_the_same_hint(fake):
    fake.routes[("GET", "/slow")] = (200, fake.release)
    exc = error_of(lambda: Client(fake.url, timeout=0.2).get("/slow"))
    assert str(exc) == f"cannot reach the otel-sessions service at {fake.url}: timed out. {HINT}"
    assert exc.exit_code == 1
