"""Join links of a lesson's classrooms (and one observer), each with its expiry and a QR code.

A rural classroom's big screen opens its link from a phone or a scanner: the QR code is made
here (segno, SVG) and sent as a ``data:`` URI, which the CSP's ``img-src`` allows.
"""

from __future__ import annotations

import base64
import io
import time
from datetime import UTC, datetime
from typing import Any

import segno

from sfu.lessons import Lesson, Role
from sfu.tokens import TokenIssuer, new_subject


def qr_svg_data_uri(text: str) -> str:
    """A QR code of `text` as an SVG data URI (error correction M, 4 px a module: about 320 px for a link)."""
    out = io.BytesIO()
    segno.make(text, error="m").save(out, kind="svg", scale=4, border=4, xmldecl=False)
    return "data:image/svg+xml;base64," + base64.b64encode(out.getvalue()).decode()


def join_links(lesson: Lesson, tokens: TokenIssuer, base_url: str, ttl_s: float) -> list[dict[str, Any]]:
    """One link per classroom (its own role) and one observer link, with the QR of each."""
    expires = int(time.time() + ttl_s)
    out = []
    people: list[tuple[str, str, Role, str | None]] = [
        (c.id, c.name, lesson.role_of(c.id) or Role.RURAL, None) for c in lesson.classrooms]
    people.append(("observer", "观察员 Observer", Role.OBSERVER, new_subject()))
    for classroom, name, role, sub in people:
        token = tokens.mint(lesson=lesson.id, classroom=classroom, name=name, role=role, ttl_s=ttl_s, sub=sub)
        url = f"{base_url}/lesson/{lesson.id}?token={token}"
        out.append({"classroom": classroom, "name": name, "role": str(role), "url": url,
                    "expires_at": datetime.fromtimestamp(expires, UTC).isoformat(), "qr": qr_svg_data_uri(url)})
    return out
