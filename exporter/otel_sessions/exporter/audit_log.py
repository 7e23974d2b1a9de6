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

A client refused again and again (an exporter retrying against a quota, a wrong token in a
loop) gives one line per :data:`REPEAT_S` seconds for the same status, route, tenant and client
host, the next one saying how many were left out (``repeated=N``): the log stays readable and
cannot be flooded. Deletions are always written.
"""

from __future__ import annotations

import json
import logging
import time
from urllib.parse import unquote

from otel_sessions.exporter.errors import PermissionDenied, Throttled, Unauthenticated, classify

__all__ = ["AUDIT_LOGGER", "REPEAT_S", "record", "record_refusal", "grpc_peer"]

AUDIT_LOGGER = "otel_sessions.audit"
log = logging.getLogger(AUDIT_LOGGER)
_MAX_VALUE = 200
#: Seconds between two lines of the same refusal (status, route, tenant, client host).
REPEAT_S = 10.0
_REPEATS_KEPT = 4096  # refusals remembered at most (then forgotten all at once)
_recent: dict[tuple, list] = {}  # refusal -> [time of its last line, refusals left out since]


def _value(value: object) -> str:
    if value is None or value == "":
        return "-"
    text = str(value)[:_MAX_VALUE]
    if text.isprintable() and not any(c in text for c in ' "='):
        return text
    return json.dumps(text)  # quotes it and escapes control characters (no line breaks in the log)


def record(event: str, *, route: str, client: str | None, tenant: str | None = None, status: int | None = None,
           target: str | None = None, reason: str | None = None, repeated: int = 0) -> None:
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
    if repeated:
        fields.append(f"repeated={repeated}")
    log.log(level, "audit: %s %s", event, " ".join(fields))


def _host(client: str | None) -> str | None:
    """The client's address without its port: ``10.0.0.5:51234`` and ``[::1]:4000`` (gRPC peers)
    lose the port; ``10.0.0.5`` and ``::1`` (aiohttp's remote) stay as they are."""
    if not client:
        return client
    head, sep, tail = client.rpartition(":")
    if sep and tail.isdigit() and (":" not in head or head.endswith("]")):
        return head
    return client


def _admit(status: int, route: str, client: str | None, tenant: str | None, now: float) -> int | None:
    """None when this refusal is left out (one alike was written less than REPEAT_S ago), else
    how many alike were left out since the last line."""
    key = (status, route, tenant, _host(client))
    seen = _recent.get(key)
    if seen is not None and now - seen[0] < REPEAT_S:
        seen[1] += 1
        return None
    if len(_recent) >= _REPEATS_KEPT:
        _recent.clear()
    left_out = seen[1] if seen is not None else 0
    _recent[key] = [now, 0]
    return left_out


def record_refusal(exc: BaseException, *, route: str, client: str | None, tenant: str | None = None) -> None:
    """:func:`record` a ``refused`` line when ``exc`` is a refusal (401, 403, 429); nothing for
    any other failure (a bad parameter, a missing session, Redis down...). The tenant is
    ``tenant``, else the exception's ``tenant`` attribute when the code that refused set one (a
    token known but without the scope, a tenant's quota)."""
    if isinstance(exc, (Unauthenticated, PermissionDenied, Throttled)):
        if not log.isEnabledFor(logging.WARNING):
            return
        tenant = tenant or getattr(exc, "tenant", None)
        status = classify(exc).http_status
        left_out = _admit(status, route, client, tenant, time.monotonic())
        if left_out is not None:
            record("refused", route=route, client=client, tenant=tenant, status=status, reason=str(exc),
                   repeated=left_out)


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
