"""Fixtures for the browser tests: `chromium` and `pages` (page_fixtures.py)."""

from page_fixtures import chromium, pages

__all__ = ["chromium", "pages"]
