"""The web page at ``/``: a favicon without a request, costs with significant digits and the
legend of ``*``, disabled pager buttons that look disabled, a layout for narrow windows."""

from __future__ import annotations

import json
import re
import shutil
import subprocess

import pytest

from tests.support import http


@pytest.fixture()
def page(service) -> str:
    status, body, headers = http("GET", service.http_url + "/")
    assert status == 200 and headers["Content-Type"].startswith("text/html")
    return body.decode()


def test_favicon_is_inline(page):
    # the browser asks for /favicon.ico only when the page names no icon
    assert re.search(r'<link rel="icon" href="data:image/svg\+xml,[^"]+">', page)


def test_disabled_buttons_look_disabled_and_narrow_windows_fit(page):
    css = page.split("<style>", 1)[1].split("</style>", 1)[0]
    assert re.search(r"button:disabled\s*\{[^}]*background:[^}]*cursor: default", css)
    assert "@media (max-width: 900px)" in css and "@media (max-width: 520px)" in css
    assert ".scroll { overflow-x: auto; }" in css and '<div class="scroll">' in page


def test_the_star_of_estimated_costs_is_explained(page):
    assert "* estimated from the model price table" in page
    assert "if (body.data.some((s) => s.cost_estimated)) app.append(" in page  # under the list
    assert '${s.cost_estimated ? `<p class="note muted">${ESTIMATED}</p>` : ""}' in page  # in the detail


@pytest.mark.skipif(shutil.which("node") is None, reason="needs node to run the page's script")
def test_costs_show_significant_digits(page):
    source = re.search(r"const fmtCost = \(c\) => \{.*?\n\};", page, flags=re.S).group(0)
    cases = [0, None, 0.0123, 1.5, 0.00006, 0.000012, 0.0000123456, 0.00123, 1e-12, 12.3456]
    script = source + f"\nconsole.log(JSON.stringify({json.dumps(cases)}.map(fmtCost)));"
    out = subprocess.run(["node", "-e", script], capture_output=True, text=True, timeout=30, check=True).stdout
    assert json.loads(out) == ["$0.0000", "$0.0000", "$0.0123", "$1.5000", "$0.00006", "$0.000012", "$0.000012",
                               "$0.0012", "$0.0000", "$12.3456"]
