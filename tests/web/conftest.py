"""Fixtures of the web page tests: one real service loaded with the demo conversation (and one
more session, ``dataset.py``) for the module, a real headless Chromium driven by Playwright,
and per test a fresh browser context whose console errors and uncaught exceptions are kept.

Chromium is the system's (``/usr/bin/chromium``, Debian's ``chromium`` package; ``.ci/run``
installs it when missing; ``OTEL_SESSIONS_CHROMIUM`` names another): Playwright never
downloads a browser here. Screenshots go to ``tests/artifacts/`` (git-ignored).
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.support import RunningService
from tests.web import dataset

ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"


def _chromium() -> str | None:
    path = os.environ.get("OTEL_SESSIONS_CHROMIUM") or "/usr/bin/chromium"
    return path if Path(path).exists() else shutil.which("chromium")


@dataclass
class Loaded:
    """The running service and what was sent to it."""

    service: RunningService
    demo: dataset.DemoConversation

    @property
    def url(self) -> str:
        return self.service.http_url

    def session_id(self, name: str) -> str:
        return next(s["id"] for s in self.demo.sessions if s["name"] == name)


@pytest.fixture(scope="module")
def loaded(redis_server):
    import redis

    client = redis.Redis.from_url(redis_server.url)
    client.flushall()
    client.close()
    with RunningService(redis_server.url) as service:
        yield Loaded(service, dataset.load(service.http_url))


@pytest.fixture(scope="module")
def browser():
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is in the test extra")
    executable = _chromium()
    if executable is None:
        pytest.skip("no Chromium: install Debian's chromium package (.ci/run does) or set OTEL_SESSIONS_CHROMIUM")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, headless=True)
        yield browser
        browser.close()


@dataclass
class Watched:
    """A page and what went wrong in it: console errors and uncaught exceptions."""

    page: object
    problems: list[str] = field(default_factory=list)

    def check(self, screenshot: str | None = None) -> None:
        """Save a screenshot (``tests/artifacts/<name>.png``) and assert nothing went wrong."""
        if screenshot:
            ARTIFACTS.mkdir(exist_ok=True)
            self.page.screenshot(path=str(ARTIFACTS / f"{screenshot}.png"), full_page=True)
        assert self.problems == [], self.problems


@pytest.fixture()
def watched(browser):
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(10_000)
    page = context.new_page()
    out = Watched(page)
    page.on("console", lambda message: message.type == "error" and out.problems.append("console: " + message.text))
    page.on("pageerror", lambda error: out.problems.append(f"uncaught: {error}"))
    yield out
    context.close()
