"""The web page at ``/`` without a browser (tests/web drive it in Chromium): a favicon without
a request, costs with significant digits as the CLI writes them and the legend of ``*``,
disabled pager buttons that look disabled, a layout for narrow windows."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from otel_sessions.exporter.cli.render import ESTIMATED_NOTE, format_usd
from tests.support import http

WEB = Path(__file__).resolve().parents[2] / "exporter" / "otel_sessions" / "exporter" / "serve" / "web"


@pytest.fixture()
def page(service) -> str:
    status, body, headers = http("GET", service.http_url + "/")
    assert status == 200 and headers["Content-Type"].startswith("text/html")
    return body.decode()


def test_favicon_is_inline(page):
    # the browser asks for /favicon.ico only when the page names no icon
    assert re.search(r'<link rel="icon" href="data:image/svg\+xml,[^"]+">', page)


def test_disabled_buttons_look_disabled_and_narrow_windows_fit(service):
    status, css, _ = http("GET", service.http_url + "/web/app.css")
    css = css.decode()
    assert status == 200 and re.search(r"button:disabled[^{]*\{[^}]*background:[^}]*cursor: not-allowed", css)
    assert "@media (max-width: 900px)" in css and "@media (max-width: 640px)" in css


def test_the_star_of_estimated_costs_is_explained():
    legend = re.search(r'export const COST_LEGEND = "([^"]+)";', (WEB / "list.js").read_text()).group(1)
    assert legend == ESTIMATED_NOTE


@pytest.mark.skipif(shutil.which("node") is None, reason="needs node to run the page's module")
def test_costs_show_significant_digits():
    cases = [0, None, 0.0123, 1.5, 0.00006, 0.000012, 0.0000123456, 0.00123, 1e-12, 12.3456]
    script = (f"import {{ fmtCost }} from {json.dumps((WEB / 'dom.js').as_uri())};\n"
              f"console.log(JSON.stringify({json.dumps(cases)}.map(fmtCost)));")
    out = subprocess.run(["node", "--input-type=module", "-e", script], capture_output=True, text=True, timeout=30,
                         check=True).stdout
    assert json.loads(out) == [format_usd(c) for c in cases] == [
        "$0.0000", "$0.0000", "$0.0123", "$1.5000", "$0.00006", "$0.000012", "$0.000012", "$0.0012", "$0.0000",
        "$12.3456"]
