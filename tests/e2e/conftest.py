"""Fixtures for the end-to-end tests: the browser fixtures of tests/web, for tests that drive a lesson
page too; tests/recorder's synthetic captures are importable as well."""

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(TESTS / "web"))  # lesson_page, page_fixtures
sys.path.insert(0, str(TESTS / "recorder"))  # synthetic

from page_fixtures import lesson_chromium, pages  # noqa: E402
from playwright.sync_api import Browser  # noqa: E402

__all__ = ["chromium", "pages"]


@pytest.fixture(scope="module")
def chromium() -> Iterator[Browser]:
    """Chromium for one module only: Playwright's sync API runs an event loop while it is open, so
    the asyncio tests that follow in tests/e2e and beyond need it closed, and a later
    directory's own Chromium cannot start beside it."""
    yield from lesson_chromium()
