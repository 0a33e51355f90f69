"""Shared by the browser tests: a live CDT, Debian's Chromium driven by Playwright, a page whose console is watched
and whose steps are kept as screenshots in tests/artifacts/web/ (CDT_TEST_ARTIFACTS to put them elsewhere)."""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from geoserver_app.app import create_app
from geoserver_app.config import Config
from tests.conftest import live_server

CHROMIUM = os.environ.get("CDT_CHROMIUM", "/usr/bin/chromium")
ARTIFACTS = Path(os.environ.get("CDT_TEST_ARTIFACTS", Path(__file__).parent / "artifacts")) / "web"
# Chromium on a closed network: no background connections, no sandbox when run as root in CI.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-quic"]


@pytest.fixture(scope="module")
def base_url(db_url) -> Iterator[str]:
    app = create_app(Config(), database_url=db_url)
    with live_server(app, "cdt-web-client") as url:
        yield url


_CLEARED: list[bool] = []


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: scripts/test.sh installs Debian's chromium (or set CDT_CHROMIUM)")
    if not _CLEARED:  # this run's screenshots only: cleared once, not by each module's browser
        shutil.rmtree(ARTIFACTS, ignore_errors=True)
        ARTIFACTS.mkdir(parents=True)
        _CLEARED.append(True)
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


class Page:
    """A fresh browser context (no cookies, no cache) with its console watched."""

    def __init__(self, browser, base_url: str, name: str, **context):
        self.context = browser.new_context(locale="en-US", **({"viewport": {"width": 1280, "height": 800}} | context))
        self.page = self.context.new_page()
        self.base_url, self.name, self.step = base_url, name, 0
        self.errors: list[str] = []
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        self.page.on("pageerror", lambda e: self.errors.append(f"pageerror: {e}"))
        # Which request a "Failed to load resource" console error was about (the console does not say).
        self.page.on("response", lambda r: self.errors.append(f"{r.status} {r.request.method} {r.url}")
                     if r.status >= 400 else None)

    def open(self, path: str = "/") -> Page:
        self.page.goto(self.base_url + path)
        self.page.wait_for_selector("body[data-ready=true]", state="attached", timeout=20000)
        return self

    def shot(self, label: str) -> None:
        self.step += 1
        self.page.screenshot(path=str(ARTIFACTS / f"{self.name}-{self.step:02d}-{label}.png"))

    def js(self, expression: str, arg=None):
        return self.page.evaluate(expression, arg)

    def wait_js(self, expression: str, timeout: float = 15.0) -> None:
        """Wait until the expression is truthy. (Playwright's wait_for_function evaluates its predicate with
        eval, which the client's Content-Security-Policy forbids, rightly; evaluate() goes through CDP.)"""
        deadline = time.monotonic() + timeout
        while not self.page.evaluate(expression):
            if time.monotonic() > deadline:
                raise AssertionError(f"still false after {timeout} s: {expression}")
            self.page.wait_for_timeout(100)

    def view(self, lat: float, lon: float, zoom: int) -> None:
        self.js("([lat, lon, z]) => cdt.map.setView([lat, lon], z, {animate: false})", [lat, lon, zoom])
        self.page.wait_for_timeout(300)

    def map_point(self, lat: float, lon: float) -> tuple[float, float]:
        """Page coordinates of a place on the map."""
        box = self.page.locator("#map").bounding_box()
        p = self.js("([lat, lon]) => { const p = cdt.map.latLngToContainerPoint([lat, lon]); return [p.x, p.y]; }",
                    [lat, lon])
        return box["x"] + p[0], box["y"] + p[1]

    def login(self, login: str) -> None:
        self.page.click("#login-btn")
        self.page.fill("#login-name", login)
        self.page.fill("#login-password", f"demo-{login}")
        self.page.click("#login-form button[type=submit]")
        self.page.wait_for_selector("#logout-btn")

    def close(self) -> None:
        self.context.close()


@pytest.fixture
def make_page(browser, base_url, request):
    pages: list[Page] = []

    def make(**context) -> Page:
        page = Page(browser, base_url, request.node.name.removeprefix("test_"), **context)
        pages.append(page)
        return page

    yield make
    failed = getattr(request.node, "rep_call", None) is not None and request.node.rep_call.failed
    for page in pages:
        if failed:
            page.shot("FAILED")
        page.close()


