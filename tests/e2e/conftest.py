"""Fixtures for the end-to-end tests: the browser fixtures of tests/web (one Chromium per module), for
tests that drive a lesson page too; tests/recorder's synthetic captures are importable as well."""

import sys
from pathlib import Path

TESTS = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(TESTS / "web"))  # lesson_page, page_fixtures
sys.path.insert(0, str(TESTS / "recorder"))  # synthetic

from page_fixtures import chromium, pages  # noqa: E402

__all__ = ["chromium", "pages"]
