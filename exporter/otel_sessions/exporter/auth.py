"""The bearer guard every route and RPC passes through (constant-time token comparison).

A :class:`BearerGuard` holds the token of one kind of access (ingest, query) or none. With
no token configured it lets everything through; with one, a request needs
``Authorization: Bearer <token>`` (RFC 6750), else :class:`~.errors.Unauthenticated`.
"""

from __future__ import annotations

import hmac
from collections.abc import Iterable

from otel_sessions.exporter.errors import Unauthenticated

__all__ = ["BearerGuard", "bearer_ok"]


def bearer_ok(header: str | None, token: str) -> bool:
    """True when ``header`` is ``Bearer <token>`` (scheme case-insensitive)."""
    if not header:
        return False
    scheme, _, value = header.partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(value.strip().encode(), token.encode())


class BearerGuard:
    """Checks one kind of access. ``what`` names the flag that set the token, for the message."""

    def __init__(self, token: str | None, what: str) -> None:
        self.token = token
        self.what = what

    def check(self, authorization: str | None) -> None:
        """Pass, or raise :class:`Unauthenticated`; ``authorization`` is the header's value."""
        if self.token is not None and not bearer_ok(authorization, self.token):
            raise Unauthenticated(f"missing or wrong bearer token (the service was started with {self.what})")

    def check_grpc(self, metadata: Iterable[tuple[str, str | bytes]] | None) -> None:
        """:meth:`check` on gRPC invocation metadata (the ``authorization`` key)."""
        if self.token is None:
            return
        value = next((v for k, v in metadata or () if k == "authorization"), None)
        self.check(value.decode() if isinstance(value, bytes) else value)
