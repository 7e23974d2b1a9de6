"""ASGI and WSGI middleware: ids from request headers (or baggage), echoed in the response."""

from __future__ import annotations

import asyncio
import logging
import re
from typing import Any
from wsgiref.util import setup_testing_defaults

import pytest

from otel_sessions.processor import (
    SessionASGIMiddleware,
    SessionWSGIMiddleware,
    current_session,
    enable_baggage,
)
from otel_sessions.processor.attributes import SESSION_ID, THREAD_ID, USER_ID

from .conftest import Traced

SESSION_RE = re.compile(r"^sess_[0-9a-f]{32}$")


def _asgi_app(traced: Traced, seen: list[Any]):
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        seen.append(current_session())
        traced.tracer.start_span("handler").end()
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.body", "body": b"ok"})

    return app


def _call_asgi(app: Any, headers: dict[str, str], scope_type: str = "http") -> list[dict[str, Any]]:
    sent: list[dict[str, Any]] = []
    scope = {
        "type": scope_type,
        "method": "GET",
        "path": "/",
        "headers": [(k.encode(), v.encode()) for k, v in headers.items()],
    }

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b""}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    asyncio.run(app(scope, receive, send))
    return sent


def test_asgi_takes_header_ids_and_returns_them(traced: Traced) -> None:
    seen: list[Any] = []
    app = SessionASGIMiddleware(_asgi_app(traced, seen))
    sent = _call_asgi(app, {"X-Session-Id": "s-1", "x-thread-id": "t-1", "x-user-id": "u-1"})
    headers = dict(sent[0]["headers"])
    assert headers[b"x-session-id"] == b"s-1" and headers[b"x-thread-id"] == b"t-1"
    assert headers[b"content-type"] == b"text/plain"
    assert seen[0].user_id == "u-1"
    assert traced.attrs("handler") == {SESSION_ID: "s-1", THREAD_ID: "t-1", USER_ID: "u-1"}
    assert current_session() is None


def test_asgi_generates_a_session_without_headers_and_drops_bad_ones(
    traced: Traced, caplog: pytest.LogCaptureFixture
) -> None:
    seen: list[Any] = []
    app = SessionASGIMiddleware(_asgi_app(traced, seen))
    with caplog.at_level(logging.WARNING, logger="otel_sessions"):
        sent = _call_asgi(app, {"x-user-id": "u" * 300})
    headers = dict(sent[0]["headers"])
    assert SESSION_RE.match(headers[b"x-session-id"].decode())
    assert seen[0].user_id is None and len(caplog.records) == 1


def test_asgi_lifespan_passes_through(traced: Traced) -> None:
    seen: list[Any] = []
    _call_asgi(SessionASGIMiddleware(_asgi_app(traced, seen)), {}, scope_type="lifespan")
    assert seen == [None]


def test_asgi_uses_baggage_header_when_enabled(traced_baggage: Traced) -> None:
    seen: list[Any] = []
    app = SessionASGIMiddleware(_asgi_app(traced_baggage, seen))
    _call_asgi(app, {"baggage": "session.id=from-baggage,user.id=bu"})
    assert (seen[0].session_id, seen[0].user_id) == ("from-baggage", "bu")


def _wsgi_app(traced: Traced, seen: list[Any]):
    def app(environ: dict[str, Any], start_response: Any):
        seen.append(current_session())
        start_response("200 OK", [("Content-Type", "text/plain")])

        def body():
            traced.tracer.start_span("streamed").end()  # runs while the server iterates
            yield b"ok"

        return body()

    return app


def _call_wsgi(app: Any, environ_headers: dict[str, str]) -> tuple[list[tuple[str, str]], bytes]:
    environ: dict[str, Any] = dict(environ_headers)
    setup_testing_defaults(environ)
    got: list[tuple[str, str]] = []

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> None:
        got.extend(headers)

    result = app(environ, start_response)
    try:
        body = b"".join(result)
    finally:
        result.close()
    return got, body


def test_wsgi_takes_header_ids_and_returns_them(traced: Traced) -> None:
    seen: list[Any] = []
    app = SessionWSGIMiddleware(_wsgi_app(traced, seen))
    headers, body = _call_wsgi(app, {"HTTP_X_SESSION_ID": "ws", "HTTP_X_USER_ID": "wu"})
    assert body == b"ok"
    got = dict(headers)
    assert got["x-session-id"] == "ws" and got["x-thread-id"].startswith("thrd_")
    assert traced.attrs("streamed")[SESSION_ID] == "ws"  # the body's iteration is in the session
    assert traced.attrs("streamed")[USER_ID] == "wu"
    assert current_session() is None


def test_wsgi_baggage_header(traced: Traced) -> None:
    enable_baggage()
    seen: list[Any] = []
    app = SessionWSGIMiddleware(_wsgi_app(traced, seen))
    _call_wsgi(app, {"HTTP_BAGGAGE": "langfuse_session_id=lf,gen_ai.conversation.id=th"})
    assert (seen[0].session_id, seen[0].thread_id) == ("lf", "th")
