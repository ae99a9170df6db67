"""The browser fixtures (imported by tests/web/conftest.py and tests/e2e/conftest.py): Debian's Chromium
driven by Playwright, with fake camera/mic, and the lesson pages a test opens.

Chromium is installed from the Debian package when it is missing (never `playwright install`);
see browser.py. Screenshots go to test-artifacts/screenshots/ and each page's console log to
test-artifacts/browser-logs/, both under the repository root.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from contextlib import closing

import pytest
from browser import FAKE_MEDIA_FLAGS, FLAGS, SCREENSHOTS, ensure_chromium, launch_chromium
from harness import ROOT
from lesson_page import LessonPages
from playwright.sync_api import Browser


def _vendor_ready() -> None:
    if not (ROOT / "web/node_modules/socket.io-client/dist/socket.io.esm.min.js").exists():
        result = subprocess.run(["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"], cwd=ROOT / "web",
                                capture_output=True, text=True, timeout=600)
        if result.returncode != 0:
            pytest.fail(f"browser assets missing and `npm ci` in web/ failed:\n{result.stderr[-2000:]}")


def lesson_chromium() -> Iterator[Browser]:
    """Chromium with the fake camera and microphone (each page gets its own context: own storage,
    own permissions), closed when the generator ends."""
    ensure_chromium()
    _vendor_ready()
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with launch_chromium([*FAKE_MEDIA_FLAGS, *FLAGS]) as browser:
        yield browser


@pytest.fixture(scope="module")
def chromium() -> Iterator[Browser]:
    """One Chromium per test module. Not per session: while Playwright's sync API is open it holds
    the main thread's event loop as running, so every later `asyncio.run` (and pytest-asyncio test,
    and a second `sync_playwright()`) in the session would fail with "cannot be called from a
    running event loop"."""
    yield from lesson_chromium()


@pytest.fixture
def pages(chromium: Browser, request: pytest.FixtureRequest) -> Iterator[LessonPages]:
    """Opens lesson pages (one browser context each, like separate computers) and closes them."""
    with closing(LessonPages(chromium, request.node.name)) as opened:
        yield opened
