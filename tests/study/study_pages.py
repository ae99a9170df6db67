"""Pages of the lesson-study tests and tokens for them (imported as `study_pages`).

Chromium itself comes from browser.py. Console logs and screenshots go to test-artifacts/ under
the repository root.
"""

from __future__ import annotations

from pathlib import Path

from browser import SCREENSHOTS, save_console_log
from harness import ServerProcess, mint_token
from playwright.sync_api import Browser, BrowserContext, Page


def mint(server: ServerProcess, *, role: str, name: str, lesson: str = "*", classroom: str = "") -> str:
    """A token with a chosen display name (the harness names observers after their classroom claim)."""
    return mint_token(server, role=role, lesson=lesson, classroom=classroom or f"{role}-{name}", name=name)


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
        path = SCREENSHOTS / f"{self.test_name}-{name}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(path), full_page=True)
        return path

    def close(self) -> None:
        for label, context, log in self.contexts:
            save_console_log(self.test_name, label, log)
            context.close()
