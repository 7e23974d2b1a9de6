"""ASGI and WSGI middleware: the session of a request from its headers, echoed in the response.

Request headers ``x-session-id``, ``x-thread-id`` and ``x-user-id`` (Agentuity's convention)
open a session around the request; with baggage enabled, session keys in the request's W3C
``baggage`` header (or the current context) are used when a header is missing. When the
request names no session, a new one is generated. The response carries ``x-session-id`` and
``x-thread-id`` so the client can send them back on its next request.

Invalid header values are dropped with one warning line (see ``session``); never raises.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

from opentelemetry import propagate

from .attributes import (
    HEADER_SESSION_ID,
    HEADER_THREAD_ID,
    HEADER_USER_ID,
    SESSION_ID,
    THREAD_ID,
    USER_ID,
)
from .context import _ACTIVE, SessionContext, _activate, _deactivate, session
from .propagation import baggage_enabled, ids_from_baggage

__all__ = ["SessionASGIMiddleware", "SessionWSGIMiddleware", "session_from_headers"]


def session_from_headers(headers: Mapping[str, str]) -> session:
    """A ``session`` for a request with ``headers`` (keys lower-case).

    Each id comes from its ``x-…`` header, else (baggage enabled) from the current context's
    baggage, else from the ``baggage`` header; a missing session or thread id is generated.
    """
    ids: dict[str, str] = {}
    if baggage_enabled():
        ids = ids_from_baggage()
        if SESSION_ID not in ids and "baggage" in headers:
            ids = ids_from_baggage(propagate.extract(dict(headers)))
    return session(
        headers.get(HEADER_SESSION_ID) or ids.get(SESSION_ID),
        thread_id=headers.get(HEADER_THREAD_ID) or ids.get(THREAD_ID),
        user_id=headers.get(HEADER_USER_ID) or ids.get(USER_ID),
    )


def _response_headers(active: SessionContext) -> list[tuple[str, str]]:
    pairs = [(HEADER_SESSION_ID, active.session_id), (HEADER_THREAD_ID, active.thread_id)]
    out = []
    for name, value in pairs:
        try:
            value.encode("latin-1")
        except UnicodeEncodeError:  # not sendable as an HTTP header value
            continue
        out.append((name, value))
    return out


class SessionASGIMiddleware:
    """ASGI middleware: ``app = SessionASGIMiddleware(app)``. HTTP and WebSocket scopes run
    inside the request's session; other scopes (lifespan) pass through."""

    def __init__(self, app: Callable[..., Any]) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Callable[..., Any], send: Callable[..., Any]) -> None:
        if scope.get("type") not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        headers = {
            key.decode("latin-1").lower(): value.decode("latin-1") for key, value in scope.get("headers") or ()
        }
        async with session_from_headers(headers) as active:
            extra = [(name.encode(), value.encode("latin-1")) for name, value in _response_headers(active)]

            async def send_with_ids(message: dict[str, Any]) -> None:
                if message.get("type") == "http.response.start":
                    message = {**message, "headers": [*(message.get("headers") or ()), *extra]}
                await send(message)

            await self.app(scope, receive, send_with_ids)


class SessionWSGIMiddleware:
    """WSGI middleware: ``app = SessionWSGIMiddleware(app)``. The app and the iteration of its
    response body run inside the request's session."""

    def __init__(self, app: Callable[..., Any]) -> None:
        self.app = app

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        headers = {
            name: environ[key]
            for name, key in (
                (HEADER_SESSION_ID, "HTTP_X_SESSION_ID"),
                (HEADER_THREAD_ID, "HTTP_X_THREAD_ID"),
                (HEADER_USER_ID, "HTTP_X_USER_ID"),
                ("baggage", "HTTP_BAGGAGE"),
            )
            if environ.get(key)
        }
        active = session_from_headers(headers)._spec.build(_ACTIVE.get())
        extra = _response_headers(active)

        def start_response_with_ids(status: str, response_headers: list[tuple[str, str]], *args: Any) -> Any:
            return start_response(status, [*response_headers, *extra], *args)

        activation = _activate(active)
        try:
            body = self.app(environ, start_response_with_ids)
        finally:
            _deactivate(activation)
        return _BodyInSession(body, active)


class _BodyInSession:
    """A WSGI response body whose iteration and ``close()`` run inside the session."""

    def __init__(self, body: Iterable[bytes], active: SessionContext) -> None:
        self._body = body
        self._active = active
        self._iterator: Iterator[bytes] | None = None

    def __iter__(self) -> Iterator[bytes]:
        return self

    def __next__(self) -> bytes:
        activation = _activate(self._active)
        try:
            if self._iterator is None:
                self._iterator = iter(self._body)
            return next(self._iterator)
        finally:
            _deactivate(activation)

    def close(self) -> None:
        close = getattr(self._body, "close", None)
        if close is not None:
            activation = _activate(self._active)
            try:
                close()
            finally:
                _deactivate(activation)
