"""Fixtures for the browser tests: Debian's Chromium driven by Playwright, with fake camera/mic.

Chromium is installed from the Debian package when it is missing (never `playwright install`).
Screenshots go to test-artifacts/screenshots/ and each page's console log to
test-artifacts/browser-logs/, both under the repository root.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from harness import ROOT
from lesson_page import ARTIFACTS, LessonPages
from playwright.sync_api import Browser, sync_playwright

CHROMIUM = Path(os.environ.get("TWINCLASS_CHROMIUM", "/usr/bin/chromium"))

CHROMIUM_FLAGS = [
    # three fake cameras (30 fps) and fake microphones; permission prompts accepted
    "--use-fake-device-for-media-stream=fps=30,device-count=3",
    "--use-fake-ui-for-media-stream",
    # the lesson server's ICE candidates are on 127.0.0.1, and aiortc cannot resolve mDNS names
    "--allow-loopback-in-peer-connection",
    "--disable-features=WebRtcHideLocalIpsWithMdns",
    # the observer has no camera, so nothing unlocks autoplay with sound for it
    "--autoplay-policy=no-user-gesture-required",
    # offline, containerised machine
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-renderer-backgrounding",
    "--disable-background-timer-throttling",
    "--disable-backgrounding-occluded-windows",
]


def ensure_chromium() -> Path:
    """Install Debian's chromium when it is absent (the tests need a real browser)."""
    if CHROMIUM.exists():
        return CHROMIUM
    sudo = [] if os.geteuid() == 0 else ["sudo", "-n"]
    apt = shutil.which("apt-get")
    if apt is None:
        pytest.fail(f"{CHROMIUM} is missing and apt-get is not available: install Chromium")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for args in (["update", "-qq"], ["install", "-y", "-qq", "chromium"]):
        result = subprocess.run([*sudo, apt, *args], env=env, capture_output=True, text=True, timeout=900)
        if result.returncode != 0:
            pytest.fail(f"could not install chromium (apt-get {' '.join(args)}):\n{result.stderr[-2000:]}")
    if not CHROMIUM.exists():
        pytest.fail(f"chromium installed but {CHROMIUM} is still missing")
    return CHROMIUM


def _vendor_ready() -> None:
    if not (ROOT / "web/node_modules/socket.io-client/dist/socket.io.esm.min.js").exists():
        result = subprocess.run(["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"], cwd=ROOT / "web",
                                capture_output=True, text=True, timeout=600)
        if result.returncode != 0:
            pytest.fail(f"browser assets missing and `npm ci` in web/ failed:\n{result.stderr[-2000:]}")


@pytest.fixture(scope="session")
def chromium() -> Iterator[Browser]:
    """One Chromium for the whole run (each page gets its own context: own storage, own permissions)."""
    executable = ensure_chromium()
    _vendor_ready()
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(executable), args=CHROMIUM_FLAGS, headless=True)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def pages(chromium: Browser, request: pytest.FixtureRequest) -> Iterator[LessonPages]:
    """Opens lesson pages (one browser context each, like separate computers) and closes them."""
    opened = LessonPages(chromium, request.node.name)
    try:
        yield opened
    finally:
        opened.close()
