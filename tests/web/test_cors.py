"""CORS in a real Chromium: a page of another origin (another port on 127.0.0.1) sends OTLP/JSON
to the service with fetch, with Content-Type and Authorization (a preflighted request), and
reads the answer; the browser lets it through only when the origin is in ``--cors-origins``."""

from __future__ import annotations

import http.server
import threading

import pytest

from tests.support import RunningService

TOKEN = "cors-ingest-2b7e"
BODY = ('{"resourceSpans":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"browser-app"}}]},'
        '"scopeSpans":[{"spans":[{"traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b174",'
        '"name":"click","kind":1,"startTimeUnixNano":"1700000000000000000","endTimeUnixNano":"1700000000100000000",'
        '"attributes":[{"key":"session.id","value":{"stringValue":"sess-browser-cors"}}]}]}]}]}')

SEND = """async ([url, body, token]) => {
  try {
    const response = await fetch(url + "/v1/traces", {method: "POST", body,
      headers: {"Content-Type": "application/json", "Authorization": "Bearer " + token}});
    return {status: response.status, auth: response.headers.get("WWW-Authenticate")};
  } catch (error) {
    return {error: String(error)};
  }
}"""


class _Blank(http.server.BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802
        body = b"<!doctype html><title>app</title><p>app"
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture()
def app_origin():
    """An HTTP server of a blank page on another port: another origin."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Blank)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture()
def page(browser):
    context = browser.new_context()
    page = context.new_page()
    yield page
    context.close()


def test_a_listed_origin_exports_from_the_browser(redis_url, app_origin, page):
    with RunningService(redis_url, cors_origins=app_origin, ingest_token=TOKEN) as service:
        page.goto(app_origin + "/")
        assert page.evaluate(SEND, [service.http_url, BODY, TOKEN]) == {"status": 200, "auth": None}
        assert service.session("sess-browser-cors").span_count == 1
        # a wrong token: the page reads the 401 and its WWW-Authenticate (exposed to it)
        assert page.evaluate(SEND, [service.http_url, BODY, "wrong"]) == {"status": 401, "auth": "Bearer"}


def test_an_unlisted_origin_is_blocked_by_the_browser(redis_url, app_origin, page):
    with RunningService(redis_url, cors_origins="https://app.example.com", ingest_token=TOKEN) as service:
        page.goto(app_origin + "/")
        result = page.evaluate(SEND, [service.http_url, BODY, TOKEN])
        assert "error" in result and "Failed to fetch" in result["error"]
        assert service.session("sess-browser-cors") is None  # the preflight failed: nothing was sent
    with RunningService(redis_url, ingest_token=TOKEN) as service:  # CORS off
        page.goto(app_origin + "/")
        assert "error" in page.evaluate(SEND, [service.http_url, BODY, TOKEN])
        assert service.session("sess-browser-cors") is None
