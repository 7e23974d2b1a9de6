"""Bearer-token checks for ingest and query (constant-time comparison)."""

from __future__ import annotations

import hmac

__all__ = ["bearer_ok"]


def bearer_ok(header: str | None, token: str) -> bool:
    """True when ``header`` is ``Bearer <token>``."""
    if not header:
        return False
    scheme, _, value = header.partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(value.strip().encode(), token.encode())
