"""What ``serve`` warns about at start-up: a token given on the command line, an address
beyond loopback with no token at all, one single token without the other (the routes of the
other's scopes then refuse everyone), and a tenant token that is the SHA-256 of a well-known
word (``test``, as in examples).

Warnings never carry a token: they name the flag or the address only.
"""

from __future__ import annotations

import ipaddress

from otel_sessions.exporter.serve.settings import OPTIONS, Settings
from otel_sessions.exporter.tenants import guessable_tokens

__all__ = ["is_loopback", "start_warnings", "guessable_token_warnings"]

_ENV_OF = {option.flag: option.env for option in OPTIONS}


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback addresses (127.0.0.0/8, ``::1``, with or without
    brackets); False for anything else, wildcard addresses (``0.0.0.0``, ``::``) included."""
    host = host.strip().strip("[]").lower().rstrip(".")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def start_warnings(settings: Settings) -> list[str]:
    """The warnings ``serve`` prints before it starts, one sentence each (empty when none)."""
    warnings = []
    for flag in settings.tokens_on_command_line:
        warnings.append(f"{flag} puts the token on the command line, where any user of this machine can read it "
                        f"(ps, /proc); give it with {flag}-file or the env var {_ENV_OF[flag]} instead")
    exposed = [f"{host}:{port}" for host, port in (settings.grpc_listen, settings.http_listen) if not is_loopback(host)]
    if exposed and not settings.tenants:
        warnings.append(f"listening beyond loopback ({', '.join(exposed)}) with no token: anyone who can reach "
                        "these ports can send spans and read, tail and delete every session; set "
                        "--ingest-token-file and --query-token-file (or their env vars), or --tenants")
    if (settings.ingest_token is None) != (settings.query_token is None):
        given, missing, routes = (("ingest", "query", "lookups, the web page and deletes answer")
                                  if settings.query_token is None else ("query", "ingest", "OTLP ingest answers"))
        warnings.append(f"only the {given} token is set: once any token is set every route needs one of its scope, "
                        f"so {routes} 401 to everyone until the {missing} token (--{missing}-token-file or "
                        f"OTEL_SESSIONS_{missing.upper()}_TOKEN) is set too")
    return warnings + guessable_token_warnings(settings.tenants)


def guessable_token_warnings(tenants) -> list[str]:
    """One warning per tenant token that is the SHA-256 of a well-known word (at start, and when
    the tenants file is read again)."""
    return [f"tenant {tenant!r} has a token that is the SHA-256 of {word!r}, which anyone can guess: "
            "make tokens with 'otel-sessions tokens new'" for tenant, word in guessable_tokens(tenants)]
