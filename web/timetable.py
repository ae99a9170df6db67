"""Printable HTML timetable pages (classroom, teacher, county) from plain view dicts.

The views are built by `scheduler.views`; this module only renders, so it imports nothing
from the scheduler.
"""

from __future__ import annotations

import base64
import hashlib
import re
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape

_TEMPLATES = Path(__file__).parent / "templates"
_env = Environment(loader=FileSystemLoader(_TEMPLATES), autoescape=select_autoescape(["html"]),
                   trim_blocks=True, lstrip_blocks=True)

_PAGES = {"classroom": "timetable_classroom.html", "teacher": "timetable_teacher.html",
          "county": "timetable_county.html"}


def render(view: dict[str, Any]) -> str:
    """Render a classroom, teacher or county view (its `kind` picks the template)."""
    kind = view.get("kind")
    if kind not in _PAGES:
        raise ValueError(f"unknown timetable view kind {kind!r}")
    return _env.get_template(_PAGES[kind]).render(v=view)


def inline_style_hashes() -> list[str]:
    """CSP hashes ('sha256-…') of the templates' inline <style> blocks, which the pages must stay
    self-contained for (they are also written to files and printed)."""
    out = []
    for path in sorted(_TEMPLATES.glob("*.html")):
        for block in re.findall(r"<style>(.*?)</style>", path.read_text(encoding="utf-8"), re.DOTALL):
            digest = base64.b64encode(hashlib.sha256(block.encode("utf-8")).digest()).decode()
            out.append(f"sha256-{digest}")
    return out
