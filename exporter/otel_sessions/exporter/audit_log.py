"""The audit log: one line per deletion and per refused request, on the ``otel_sessions.audit``
logger (level WARNING for refusals, INFO for deletions).

A line is ``audit: <event> status=<code> route=<route> client=<address> tenant=<name>
[target=<id>] [reason=<text>]``, ``-`` for what is not known; values with spaces or quotes
are JSON-quoted, control characters escaped, each value cut at 200 characters. It never
holds a token or an ``Authorization`` header: callers pass the route (method and path,
without the query string), the peer address and the client-facing message of the error table,
which carries no token (``errors.py``).

Refusals are 401 (:class:`~.errors.Unauthenticated`), 403 (:class:`~.errors.PermissionDenied`),
429 (:class:`~.errors.Throttled`: a rate or quota), and the HTTP port's own 421 (a Host header
it does not serve) and 403 (a CORS preflight from an origin not listed).
"""

from __future__ import annotations

import json
import logging
from urllib.parse import unquote

from otel_sessions.exporter.errors import PermissionDenied, Throttled, Unauthenticated, classify

__all__ = ["AUDIT_LOGGER", "record", "record_refusal", "grpc_peer"]

AUDIT_LOGGER = "otel_sessions.audit"
log = logging.getLogger(AUDIT_LOGGER)
_MAX_VALUE = 200


def _value(value: object) -> str:
    if value is None or value == "":
        return "-"
    text = str(value)[:_MAX_VALUE]
    if text.isprintable() and not any(c in text for c in ' "='):
        return text
    return json.dumps(text)  # quotes it and escapes control characters (no line breaks in the log)


def record(event: str, *, route: str, client: str | None, tenant: str | None = None, status: int | None = None,
           target: str | None = None, reason: str | None = None) -> None:
    """Log one audit line. ``event``: ``refused`` or ``deleted``; ``route``: ``"GET /v1/sessions"``
    or ``"SessionService/DeleteSession"``; ``client``: the peer address (None when unknown);
    ``tenant``: the tenant's name when the request's token named one (None: no tenants, or not
    known); ``status``: the HTTP status answered (gRPC answers too: 401 for UNAUTHENTICATED...);
    ``target``: the id acted on (a session id); ``reason``: the client-facing message."""
    level = logging.INFO if event == "deleted" else logging.WARNING
    if not log.isEnabledFor(level):
        return
    fields = [f"status={_value(status)}", f"route={_value(route)}", f"client={_value(client)}",
              f"tenant={_value(tenant)}"]
    if target is not None:
        fields.append(f"target={_value(target)}")
    if reason:
        fields.append(f"reason={_value(reason)}")
    log.log(level, "audit: %s %s", event, " ".join(fields))


def record_refusal(exc: BaseException, *, route: str, client: str | None, tenant: str | None = None) -> None:
    """:func:`record` a ``refused`` line when ``exc`` is a refusal (401, 403, 429); nothing for
    any other failure (a bad parameter, a missing session, Redis down...). The tenant is
    ``tenant``, else the exception's ``tenant`` attribute when the code that refused set one (a
    token known but without the scope, a tenant's quota)."""
    if isinstance(exc, (Unauthenticated, PermissionDenied, Throttled)):
        record("refused", route=route, client=client, tenant=tenant or getattr(exc, "tenant", None),
               status=classify(exc).http_status, reason=str(exc))


def grpc_peer(context) -> str | None:
    """The client address of a gRPC call: ``ipv4:10.0.0.5:51234`` -> ``10.0.0.5:51234``."""
    try:
        peer = context.peer()
    except Exception:  # a context without a peer (closed call)
        return None
    if isinstance(peer, bytes):
        peer = peer.decode(errors="replace")
    peer = unquote(peer or "")  # gRPC core percent-encodes IPv6 brackets
    for scheme in ("ipv4:", "ipv6:", "unix:"):
        if peer and peer.startswith(scheme):
            return peer[len(scheme):] if scheme != "unix:" else peer
    return peer or None
