"""Chromium for the browser tests (imported as `browser`): Debian's package driven by Playwright.

Never `playwright install`: the lesson-page tests install Debian's chromium when it is missing
(`ensure_chromium`). Screenshots go to test-artifacts/screenshots/ and each page's console log to
test-artifacts/browser-logs/, both under the repository root.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from harness import ROOT
from playwright.sync_api import Browser, sync_playwright

CHROMIUM = Path(os.environ.get("TWINCLASS_CHROMIUM", "/usr/bin/chromium"))
ARTIFACTS = ROOT / "test-artifacts"
SCREENSHOTS = ARTIFACTS / "screenshots"
BROWSER_LOGS = ARTIFACTS / "browser-logs"

FLAGS = [
    # the lesson server's ICE candidates are on 127.0.0.1, and aiortc cannot resolve mDNS names
    "--allow-loopback-in-peer-connection",
    "--disable-features=WebRtcHideLocalIpsWithMdns",
    # a page without a camera (observer, patrol) has nothing that unlocks autoplay with sound
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

FAKE_MEDIA_FLAGS = [
    # three fake cameras (30 fps) and fake microphones; permission prompts accepted
    "--use-fake-device-for-media-stream=fps=30,device-count=3",
    "--use-fake-ui-for-media-stream",
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


@contextmanager
def launch_chromium(flags: list[str]) -> Iterator[Browser]:
    """A headless Chromium (CHROMIUM) with `flags`, closed when the block ends."""
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=flags, headless=True)
        try:
            yield browser
        finally:
            browser.close()


def save_console_log(test_name: str, label: str, lines: list[str]) -> None:
    """Keep a page's console under test-artifacts/browser-logs/<test>-<label>.log."""
    BROWSER_LOGS.mkdir(parents=True, exist_ok=True)
    (BROWSER_LOGS / f"{test_name}-{label}.log").write_text("\n".join(lines) + "\n", encoding="utf-8")
