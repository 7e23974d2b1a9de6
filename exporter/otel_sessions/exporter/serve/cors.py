"""CORS on the HTTP port: off unless ``--cors-origins`` lists origins.

With origins listed, browser pages from those origins (and only those) may call the HTTP port:
OTLP/HTTP export (``POST /v1/traces``, ``POST /v1/logs``: the OTLP/HTTP specification has
browser clients send OTLP) and the lookups, with ``Content-Type``, ``Content-Encoding`` and
``Authorization`` headers.

* A preflight (``OPTIONS`` with ``Origin`` and ``Access-Control-Request-Method``) from a listed
  origin is answered 204 with ``Access-Control-Allow-Origin`` (that origin),
  ``Access-Control-Allow-Methods`` (the path's methods), ``Access-Control-Allow-Headers`` and
  ``Access-Control-Max-Age``; from another origin 403 with a JSON ``{"error"}`` and an audit
  line; on an unknown path 404.
* Every other answer to a listed origin (errors and the live tail's event stream included)
  carries ``Access-Control-Allow-Origin`` and ``Access-Control-Expose-Headers: Retry-After,
  WWW-Authenticate``; answers to other origins carry no CORS header, so the browser keeps
  them from the page. ``Vary: Origin`` is on both.

No cookies are used, so ``Access-Control-Allow-Credentials`` is never sent: the token travels
in ``Authorization``, set by the page's script.
"""

from __future__ import annotations

from aiohttp import web

from otel_sessions.exporter import audit_log

__all__ = ["install_cors", "ALLOWED_HEADERS", "MAX_AGE_S"]

ALLOWED_HEADERS = "Authorization, Content-Type, Content-Encoding"
EXPOSED_HEADERS = "Retry-After, WWW-Authenticate"
#: how long a browser may keep a preflight's answer (Chromium caps it at 2 hours)
MAX_AGE_S = 600


def install_cors(app: web.Application, origins: tuple[str, ...]) -> bool:
    """Answer preflights and add the CORS headers for ``origins`` (as browsers send ``Origin``:
    ``https://app.example.com``); nothing when ``origins`` is empty. Returns whether CORS was
    installed. Call before the app starts."""
    if not origins:
        return False
    allowed = frozenset(origins)

    @web.middleware
    async def preflight(request: web.Request, handler) -> web.StreamResponse:
        origin = request.headers.get("Origin")
        if (request.method != "OPTIONS" or origin is None
                or "Access-Control-Request-Method" not in request.headers):
            return await handler(request)
        if origin.lower() not in allowed:
            audit_log.record("refused", route=f"OPTIONS {request.path}", client=request.remote, status=403,
                         reason=f"origin {origin[:100]!r} not in --cors-origins")
            return web.json_response(
                {"error": f"origin {origin[:100]!r} may not call this service from a browser: it is not in "
                          "--cors-origins (env OTEL_SESSIONS_CORS_ORIGINS)"},
                status=403, headers={"Vary": "Origin"})
        methods = getattr(getattr(request.match_info, "http_exception", None), "allowed_methods", None)
        if not methods:  # no route at this path
            return await handler(request)
        return web.Response(status=204, headers={
            "Access-Control-Allow-Origin": origin, "Access-Control-Allow-Methods": ", ".join(sorted(methods)),
            "Access-Control-Allow-Headers": ALLOWED_HEADERS, "Access-Control-Max-Age": str(MAX_AGE_S),
            "Vary": "Origin"})

    async def add_headers(request: web.Request, response: web.StreamResponse) -> None:
        origin = request.headers.get("Origin")
        if "Access-Control-Allow-Origin" in response.headers:
            return  # a preflight's own answer
        if origin is not None and origin.lower() in allowed:
            response.headers["Access-Control-Allow-Origin"] = origin
            response.headers["Access-Control-Expose-Headers"] = EXPOSED_HEADERS
        if "Vary" not in response.headers:
            response.headers["Vary"] = "Origin"

    app.middlewares.append(preflight)
    app.on_response_prepare.append(add_headers)
    return True
