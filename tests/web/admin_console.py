"""The admin console in Chromium and over HTTP (imported as `admin_console`): its server, its
CSV files, and reading a QR code the way a phone would (a screenshot, OpenCV's detector)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from browser import SCREENSHOTS, save_console_log
from playwright.sync_api import Browser, Page

SCHOOLS_CSV = """id,name,county,kind,link_capacity
u-shiyan,县实验小学,清水县,urban,2
r-hexi,河西村小,清水县,rural,1
"""
CLASSROOMS_CSV = """id,name,school,grades
shiyan-301,实验小学 301 教室,u-shiyan,3
hexi-g3,河西村小 三年级,r-hexi,3
hexi-g4,河西村小 四年级,r-hexi,4
"""
BAD_CLASSROOMS_CSV = """id,name,school,grades
hexi-g3,河西村小 三年级,r-hexi,3
hexi-g4,河西村小 四年级,r-hexi,three
"""


def console_apis(lesson_id: str) -> list[tuple[str, str, Any]]:
    """Every console API (method, path, body)."""
    return [
        ("GET", "/api/admin/directory", None),
        ("POST", "/api/admin/directory/import", {"schools": SCHOOLS_CSV}),
        ("GET", "/api/admin/directory/schools.csv", None),
        ("GET", "/api/admin/directory/classrooms.csv", None),
        ("GET", "/api/admin/lessons", None),
        ("POST", "/api/admin/lessons", {"title": "x", "master": "shiyan-301", "rurals": ["hexi-g3"]}),
        ("GET", f"/api/admin/lessons/{lesson_id}", None),
        ("PATCH", f"/api/admin/lessons/{lesson_id}", {"title": "y"}),
        ("POST", f"/api/admin/lessons/{lesson_id}/end", None),
        ("POST", f"/api/admin/lessons/{lesson_id}/links", None),
        ("GET", "/api/admin/audit", None),
        ("GET", "/api/admin/timetable", None),
        ("POST", "/api/admin/timetable/solve", {"files": {}}),
        ("GET", "/api/admin/timetable/jobs/x", None),
        ("GET", "/api/admin/timetable/x", None),
        ("GET", "/api/admin/timetable/x/check", None),
        ("POST", "/api/admin/timetable/x/apply", {"week": "2025-09-01"}),
    ]


def upload(page: Page, schools: str | None, classrooms: str | None) -> None:
    """Choose the CSV files in the console's import form and import them."""
    for name, text in (("schools", schools), ("classrooms", classrooms)):
        files = [] if text is None else [{"name": f"{name}.csv", "mimeType": "text/csv", "buffer": text.encode()}]
        page.set_input_files(f"#file-{name}", files)
    page.click("#btn-import")


def fill_lesson(page: Page, title: str, master: str, rurals: list[str], start: datetime, end: datetime) -> None:
    """Fill the console's lesson form and save it."""
    form = page.locator("#lesson-form")
    form.locator("input[name=title]").fill(title)
    form.locator("input[name=subject]").fill("英语")
    form.locator("select[name=master]").select_option(master)
    for rural in rurals:
        form.locator(f"input[name=rural][value={rural}]").check()
    form.locator("input[name=planned_start]").fill(start.strftime("%Y-%m-%dT%H:%M"))
    form.locator("input[name=planned_end]").fill(end.strftime("%Y-%m-%dT%H:%M"))
    page.click("#btn-save")


def decode_qr(png: bytes) -> str:
    """What a scanner reads from a picture of a QR code ("" if nothing)."""
    image = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_GRAYSCALE)
    text, _points, _ = cv2.QRCodeDetector().detectAndDecode(image)
    return str(text)


class ConsolePages:
    """Pages in their own browser contexts (separate people), consoles saved, screenshots kept."""

    def __init__(self, browser: Browser, test_name: str) -> None:
        self.browser = browser
        self.test_name = test_name
        self.logs: dict[str, list[str]] = {}
        self._contexts: list[Any] = []

    def open(self, url: str, label: str, lang: str = "zh-CN") -> Page:
        context = self.browser.new_context(viewport={"width": 1280, "height": 900}, locale=lang)
        self._contexts.append(context)
        page = context.new_page()
        log = self.logs.setdefault(label, [])
        page.on("console", lambda m: log.append(f"[{m.type}] {m.text}"))
        page.on("pageerror", lambda e: log.append(f"[pageerror] {e}"))
        page.on("dialog", lambda d: d.accept())
        page.goto(url)
        return page

    def screenshot(self, page: Page, name: str) -> Path:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        path = SCREENSHOTS / f"{self.test_name}-{name}.png"
        page.screenshot(path=str(path), full_page=True)
        return path

    def close(self) -> None:
        for label, lines in self.logs.items():
            save_console_log(self.test_name, label, lines)
        for context in self._contexts:
            context.close()


@contextmanager
def console_pages(browser: Browser, test_name: str) -> Iterator[ConsolePages]:
    pages = ConsolePages(browser, test_name)
    try:
        yield pages
    finally:
        pages.close()
