"""The web page (a session debugger) and the one lookup only it needs.

Routes (``docs/interface.md``, "The web page"):

* ``GET /`` - ``web/index.html``;
* ``GET /web/{name}`` - the page's other files (``web/*.js``, ``web/*.css``, images); only
  names of files shipped in ``web/`` are served, anything else is a 404;
* ``GET /v1/sessions/{id}/usage`` - per-span tokens and cost, counted as the summary counts
  them (``ingest/usage.py``), so the page can show where they were spent.

The page and its files hold no data and need no token (the page asks for one and sends it on
its API calls, which need the ``read`` scope); they carry a Content-Security-Policy that allows only this origin's scripts,
styles and API (no inline scripts or event handlers, no external network), and no framing.
"""

from __future__ import annotations

from collections.abc import Callable
from importlib import resources

from aiohttp import web

from otel_sessions.exporter.auth import Access
from otel_sessions.exporter.errors import NotFound
from otel_sessions.exporter.ingest.grouping import BatchBuilder
from otel_sessions.exporter.ingest.usage import span_usage
from otel_sessions.exporter.lookup.params import QueryError
from otel_sessions.exporter.serve.rest import TENANT
from otel_sessions.exporter.serve.rest import _guard as guarded
from otel_sessions.exporter.serve.rest import _json as strict_json
from otel_sessions.exporter.serve.tenancy import Tenancy

__all__ = ["page_routes", "CONTENT_SECURITY_POLICY"]

#: Sent with the page and its files.
CONTENT_SECURITY_POLICY = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                           "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
_TYPES = {".html": "text/html", ".js": "text/javascript", ".css": "text/css", ".png": "image/png",
          ".svg": "image/svg+xml", ".txt": "text/plain"}
_HEADERS = {"Content-Security-Policy": CONTENT_SECURITY_POLICY, "X-Content-Type-Options": "nosniff",
            "Cache-Control": "no-cache", "Referrer-Policy": "no-referrer"}


def _files() -> dict[str, tuple[bytes, str]]:
    """Every shipped file of ``web/`` by name, with its content type."""
    out = {}
    for entry in resources.files(__package__).joinpath("web").iterdir():
        suffix = "." + entry.name.rsplit(".", 1)[-1] if "." in entry.name else ""
        if entry.is_file() and suffix in _TYPES:
            out[entry.name] = (entry.read_bytes(), _TYPES[suffix])
    return out


def _serve(files: dict[str, tuple[bytes, str]], name: str) -> web.Response:
    body, content_type = files[name]
    charset = "utf-8" if content_type.startswith("text/") or content_type.endswith("+xml") else None
    return web.Response(body=body, content_type=content_type, charset=charset, headers=_HEADERS)


def page_routes(access: Access, tenancy: Tenancy, builder: BatchBuilder) -> Callable[[web.Application], None]:
    """A route adder for :func:`~otel_sessions.exporter.serve.app.create_app`: the page's files
    need no token, its usage lookup the ``read`` scope (in the caller's tenant). ``builder`` is the ingest path's, so costs are estimated from the same price table."""
    files = _files()

    async def page(_request: web.Request) -> web.Response:
        return _serve(files, "index.html")

    async def asset(request: web.Request) -> web.Response:
        name = request.match_info["name"]
        if name not in files:
            return web.json_response({"error": f"no such path: {request.path}"}, status=404)
        return _serve(files, name)

    async def usage(request: web.Request) -> web.Response:
        for key in request.query:
            raise QueryError(key, "unknown parameter")
        session_id = request.match_info["session_id"]
        data = await request[TENANT].store.get_spans(session_id)
        if data is None:
            raise NotFound(f"no session {session_id!r}")
        return strict_json({"session_id": session_id, "data": span_usage(data, builder, session_id)})

    def add(app: web.Application) -> None:
        app.router.add_get("/", page)
        app.router.add_get("/web/{name}", asset)
        app.router.add_get("/v1/sessions/{session_id}/usage", guarded(access, tenancy, "read", usage))

    return add
