"""The web page's routes without a browser: its files (and nothing else) under /web/, the
security headers, and GET /v1/sessions/{id}/usage adding up to the session's summary."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from otel_sessions.exporter.serve.page import CONTENT_SECURITY_POLICY
from tests.support import get, http
from tests.web import dataset

WEB = Path(__file__).resolve().parents[2] / "exporter" / "otel_sessions" / "exporter" / "serve" / "web"


def test_page_and_files_are_served_with_their_types_and_policy(service):
    status, html, headers = http("GET", service.http_url + "/")
    assert status == 200 and headers["Content-Type"].startswith("text/html")
    assert headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY
    assert "script-src 'self'" in CONTENT_SECURITY_POLICY and "unsafe-inline" not in CONTENT_SECURITY_POLICY
    for name in sorted(p.name for p in WEB.iterdir()):
        status, body, headers = http("GET", f"{service.http_url}/web/{name}")
        assert status == 200 and body == (WEB / name).read_bytes(), name
        kind = {"js": "text/javascript", "css": "text/css", "html": "text/html"}[name.rsplit(".", 1)[1]]
        assert headers["Content-Type"].startswith(kind) and headers["X-Content-Type-Options"] == "nosniff", name


@pytest.mark.parametrize("path", ["/web/nothing.js", "/web/..%2Fpage.py", "/web/%2E%2E", "/web/"])
def test_only_the_page_files_are_served(service, path):
    status, body, _headers = http("GET", service.http_url + path)
    assert status == 404 and "error" in body


def test_page_has_no_inline_script_or_handler():
    """The policy forbids inline scripts and handlers: the page must not need them."""
    for path in WEB.iterdir():
        text = path.read_text()
        assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", text), path.name
        assert not re.search(r"""\son[a-z]+\s*=\s*["']""", text), path.name
        assert "innerHTML" not in text and "insertAdjacentHTML" not in text and "document.write" not in text, path.name


def test_usage_adds_up_to_the_summary(service):
    conversation = dataset.load(service.http_url)
    for session_id in [s["id"] for s in conversation.sessions] + [dataset.WEATHER_SESSION]:
        summary = get(service, "/v1/sessions/" + session_id)
        body = get(service, f"/v1/sessions/{session_id}/usage")
        assert body["session_id"] == session_id
        counted = [u for u in body["data"] if u["counted"]]
        assert sum(u["input_tokens"] for u in counted) == summary["input_tokens"]
        assert sum(u["output_tokens"] for u in counted) == summary["output_tokens"]
        assert sum(u["cost_usd"] for u in counted) == pytest.approx(summary["cost_usd"])
        assert any(u["cost_estimated"] for u in counted) == summary["cost_estimated"]
        assert all(re.fullmatch(r"[0-9a-f]{32}", u["trace_id"]) and re.fullmatch(r"[0-9a-f]{16}", u["span_id"])
                   for u in body["data"])
    assert get(service, "/v1/sessions/nope/usage", expect=404)["error"]
    assert get(service, "/v1/sessions/nope/usage?x=1", expect=400)["parameter"] == "x"
