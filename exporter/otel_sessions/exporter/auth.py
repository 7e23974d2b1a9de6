"""Access: every route and RPC resolves its caller to a :class:`Principal` here.

An :class:`Access` knows the SHA-256 digest of every configured token (the ``--tenants`` file,
or ``--ingest-token`` / ``--query-token``), each with its tenant and scopes (``tenants.py``).

* No token configured: every request is the default tenant with every scope (an open service).
* Otherwise a request needs ``Authorization: Bearer <token>`` (RFC 6750; gRPC: the
  ``authorization`` metadata): none, or a token not known, is :class:`~.errors.Unauthenticated`
  (401 / ``UNAUTHENTICATED``); a known token without the route's scope is
  :class:`~.errors.PermissionDenied` (403 / ``PERMISSION_DENIED``).

The presented token is hashed (SHA-256) and its digest looked up, then compared with
``hmac.compare_digest``: the time taken does not depend on how much of a secret was guessed.
Tokens are never logged. A refusal carries the tenant when the token was known
(``PermissionDenied.tenant``), for the audit line its route writes (``audit_log.py``).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable
from dataclasses import dataclass

from otel_sessions.exporter.errors import PermissionDenied, Unauthenticated
from otel_sessions.exporter.tenants import DEFAULT_TENANT, SCOPES, Tenant

__all__ = ["Access", "Principal", "bearer_token"]

_NO_MATCH = bytes(32)


@dataclass(frozen=True)
class Principal:
    """Who a request comes from: its tenant's name and the scopes of its token."""

    tenant: str
    scopes: frozenset[str]


#: The caller of a service with no token configured.
OPEN = Principal(DEFAULT_TENANT, frozenset(SCOPES))


def bearer_token(header: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` value (scheme case-insensitive), else None."""
    if not header:
        return None
    scheme, _, value = header.partition(" ")
    value = value.strip()
    return value if scheme.lower() == "bearer" and value else None


class Access:
    """The tokens of a service and what each may do; shared by every route, replaced whole when
    the tenants file is read again (:meth:`replace`)."""

    def __init__(self, tenants: Iterable[Tenant] = ()) -> None:
        self._by_digest: dict[bytes, tuple[bytes, Principal]] = {}
        self.tenants: dict[str, Tenant] = {}
        self.replace(tenants)

    def replace(self, tenants: Iterable[Tenant]) -> None:
        """Take ``tenants``' tokens in place of the current ones, at once (a reloaded tenants
        file): a request checked after this sees only the new tokens."""
        by_digest: dict[bytes, tuple[bytes, Principal]] = {}
        named: dict[str, Tenant] = {}
        for tenant in tenants:
            named[tenant.name] = tenant
            for token in tenant.tokens:
                by_digest[token.sha256] = (token.sha256, Principal(tenant.name, token.scopes))
        self._by_digest, self.tenants = by_digest, named

    @property
    def open(self) -> bool:
        """True when no token is configured: every request is the default tenant, every scope."""
        return not self._by_digest

    def identify(self, authorization: str | None) -> Principal:
        """The principal of an ``Authorization`` header value, or :class:`Unauthenticated`."""
        if self.open:
            return OPEN
        token = bearer_token(authorization)
        if token is not None:
            digest = hashlib.sha256(token.encode()).digest()
            # the lookup is by the digest (what an attacker cannot steer), the check constant-time
            known, principal = self._by_digest.get(digest, (_NO_MATCH, None))
            if hmac.compare_digest(known, digest) and principal is not None:
                return principal
        raise Unauthenticated("missing or unknown bearer token (Authorization: Bearer <token>)")

    def require(self, authorization: str | None, scope: str) -> Principal:
        """The principal of ``authorization`` when its token has ``scope``; else
        :class:`Unauthenticated` (no or an unknown token) or :class:`PermissionDenied`."""
        principal = self.identify(authorization)
        if scope not in principal.scopes:
            refusal = PermissionDenied(f"this token has no {scope!r} scope")
            refusal.tenant = principal.tenant
            raise refusal
        return principal

    def require_grpc(self, metadata: Iterable[tuple[str, str | bytes]] | None, scope: str) -> Principal:
        """:meth:`require` on gRPC invocation metadata (the ``authorization`` key)."""
        if self.open:
            return OPEN
        value = next((v for k, v in metadata or () if k == "authorization"), None)
        return self.require(value.decode() if isinstance(value, bytes) else value, scope)
