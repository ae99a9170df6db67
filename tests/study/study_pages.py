"""Chromium for the lesson-study tests and small helpers to read what the pages show (imported as `study_pages`).

Debian's chromium through Playwright (never `playwright install`); flags as the lesson-page tests
use them, so a patrol tile can receive WebRTC from the loopback server. Console logs and
screenshots go to test-artifacts/ under the repository root.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from harness import ROOT, ServerProcess
from playwright.sync_api import Browser, BrowserContext, Page

from sfu.tokens import TokenIssuer, load_or_create_secret

CHROMIUM = Path(os.environ.get("TWINCLASS_CHROMIUM", "/usr/bin/chromium"))
ARTIFACTS = ROOT / "test-artifacts"
FLAGS = [
    "--allow-loopback-in-peer-connection",
    "--disable-features=WebRtcHideLocalIpsWithMdns",
    "--autoplay-policy=no-user-gesture-required",
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


def mint(server: ServerProcess, *, role: str, name: str, lesson: str = "*", classroom: str = "") -> str:
    """A token with a chosen display name (the harness names observers after their classroom claim)."""
    issuer = TokenIssuer(load_or_create_secret(server.data_dir))
    if role == "admin":
        return issuer.mint_admin(name)
    return issuer.mint(lesson=lesson, classroom=classroom or f"{role}-{name}", name=name, role=role, ttl_s=3600)


def wait_for(predicate: Any, timeout: float, message: str, interval: float = 0.25) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {message}")


class Pages:
    """Pages in separate browser contexts (separate people), with their console kept for failures."""

    def __init__(self, browser: Browser, test_name: str) -> None:
        self.browser = browser
        self.test_name = test_name
        self.contexts: list[tuple[str, BrowserContext, list[str]]] = []

    def open(self, url: str, label: str, viewport: tuple[int, int] = (1280, 900)) -> Page:
        context = self.browser.new_context(viewport={"width": viewport[0], "height": viewport[1]}, locale="zh-CN")
        log: list[str] = []
        page = context.new_page()
        page.on("console", lambda m: log.append(f"[{m.type}] {m.text}"))
        page.on("pageerror", lambda e: log.append(f"[pageerror] {e}"))
        page.goto(url)
        self.contexts.append((label, context, log))
        return page

    def log(self, label: str) -> list[str]:
        return next(log for lbl, _c, log in self.contexts if lbl == label)

    def screenshot(self, page: Page, name: str) -> Path:
        path = ARTIFACTS / "screenshots" / f"{self.test_name}-{name}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(path), full_page=True)
        return path

    def close(self) -> None:
        logs = ARTIFACTS / "browser-logs"
        logs.mkdir(parents=True, exist_ok=True)
        for label, context, log in self.contexts:
            (logs / f"{self.test_name}-{label}.log").write_text("\n".join(log), encoding="utf-8")
            context.close()
