"""The HTTP port's ``Host`` check, a defence against DNS rebinding.

A page on another site can make a browser resolve the site's own name to 127.0.0.1 and then
read this service's answers as same-origin: the request then carries that site's name in
``Host``. So the HTTP port answers only ``Host`` values that name it:

* listening on a loopback address (``--http-listen 127.0.0.1:4318``, the default): always
  checked; accepted are ``localhost``, loopback addresses (``127.0.0.1``, ``[::1]``...) and
  ``--allowed-hosts``, with or without a port;
* listening anywhere else (``0.0.0.0``): checked only when ``--allowed-hosts`` is set (then
  with the same loopback names accepted too).

A refused request gets **421 Misdirected Request** (RFC 9110 15.5.20: the request was sent to a
server that does not serve that authority) with a JSON ``{"error"}`` saying what to do, and an
audit line. A request with no ``Host`` (HTTP/1.0) is let through: browsers always send one.
``/healthz`` and ``/readyz`` are not checked, so probes that address the pod by IP keep working.
"""

from __future__ import annotations

from aiohttp import web

from otel_sessions.exporter import audit_log
from otel_sessions.exporter.serve.exposure import is_loopback

__all__ = ["host_allowed", "install_host_check", "MISDIRECTED"]

MISDIRECTED = 421
_UNCHECKED_PATHS = frozenset({"/healthz", "/readyz"})


def _host_name(header: str) -> str:
    """The host of a ``Host`` header, lower-cased, without port or brackets:
    ``[::1]:4318`` -> ``::1``, ``Example.com.:80`` -> ``example.com``."""
    value = header.strip().lower()
    if value.startswith("["):
        return value[1:value.find("]")] if "]" in value else value
    return value.rsplit(":", 1)[0].rstrip(".") if value.count(":") == 1 else value.rstrip(".")


def host_allowed(header: str, allowed_hosts: tuple[str, ...]) -> bool:
    """True when ``header`` (a ``Host`` value) names loopback or an ``--allowed-hosts`` entry
    (``*.example.com`` matches any name under example.com, not example.com itself)."""
    host = _host_name(header)
    if is_loopback(host):
        return True
    for allowed in allowed_hosts:
        if allowed.startswith("*.") and host.endswith(allowed[1:]) and len(host) > len(allowed) - 1:
            return True
        if host == allowed:
            return True
    return False


def install_host_check(app: web.Application, listen_host: str, allowed_hosts: tuple[str, ...]) -> bool:
    """Put the check first among ``app``'s middlewares when it applies (see the module's
    docstring); returns whether it was installed. Call before the app starts."""
    if not allowed_hosts and not is_loopback(listen_host):
        return False

    @web.middleware
    async def check_host(request: web.Request, handler) -> web.StreamResponse:
        header = request.headers.get("Host")
        if header is None or request.path in _UNCHECKED_PATHS or host_allowed(header, allowed_hosts):
            return await handler(request)
        audit_log.record("refused", route=f"{request.method} {request.path}", client=request.remote, status=MISDIRECTED,
                     reason=f"Host {header[:100]!r} not served")
        return web.json_response(
            {"error": f"this service does not answer for Host {header[:100]!r} (a defence against DNS "
                      "rebinding); if the name is yours, add it to --allowed-hosts (env OTEL_SESSIONS_ALLOWED_HOSTS)"},
            status=MISDIRECTED)

    app.middlewares.insert(0, check_host)
    return True
