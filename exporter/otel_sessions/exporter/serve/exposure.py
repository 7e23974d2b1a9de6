"""What ``serve`` warns about at start-up: a token given on the command line, an address
beyond loopback with no token at all, and one single token without the other (the routes of
the other's scopes then refuse everyone).

Warnings never carry a token: they name the flag or the address only.
"""

from __future__ import annotations

import ipaddress

from otel_sessions.exporter.serve.settings import OPTIONS, Settings

__all__ = ["is_loopback", "start_warnings"]

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
        given, missing, scopes = (("--ingest-token", "--query-token", "lookups, the web page and deletes")
                                  if settings.query_token is None else
                                  ("--query-token", "--ingest-token", "OTLP ingest"))
        warnings.append(f"only {given} is set: once any token is set every route needs one of its scope, so "
                        f"{scopes} answer 401 to everyone until {missing} (or {missing}-file) is set too")
    return warnings
