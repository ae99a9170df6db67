"""What a school admin may do in the console, and what they see of it.

The bureau (an admin token, a bureau admin's login) runs everything. A school admin's login
(claims ``role: admin`` with a ``school``) runs their school's day: they see their school and its
classrooms, the lessons with a classroom of their school (`sfu.scope.covers`) and their live state,
hand out the join links of their school's classrooms, and end such a lesson. Planning stays with
the bureau: importing schools and classrooms, creating and editing lessons, the term timetable and
the audit log are refused to them (403 with the reason), and the page leaves those parts out.

A school claim names a school by its id or by its name (lessons keep the school's name).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from sfu.http_api import bearer_claims
from sfu.lessons import Lesson, Role
from sfu.scope import covers, is_full_admin
from sfu.tokens import Claims, TokenIssuer
from web.admin.directory import Place


@dataclass(frozen=True)
class ConsoleUser:
    claims: Claims

    @property
    def bureau(self) -> bool:
        return is_full_admin(self.claims)

    @property
    def school(self) -> str:
        return "" if self.bureau else self.claims.school

    def to_json(self) -> dict[str, Any]:
        return {"name": self.claims.name, "bureau": self.bureau, "school": self.school}

    def sees_place(self, place: Place) -> bool:
        return self.bureau or self.school in (place.school, place.school_name)

    def places(self, places: Iterable[Place]) -> list[Place]:
        return [p for p in places if self.sees_place(p)]

    def sees_lesson(self, lesson: Lesson) -> bool:
        return covers(self.claims, lesson)

    def link_rows(self, lesson: Lesson, links: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The links this user hands out: all for the bureau; a school's own classrooms' otherwise
        (not the observer link, nor the partner school's screens)."""
        if self.bureau:
            return links
        ours = {c.id for c in lesson.classrooms if c.school == self.school}
        return [link for link in links if link["classroom"] in ours]


def _forbidden(message: str) -> web.HTTPForbidden:
    return web.HTTPForbidden(text=json.dumps({"error": message}, ensure_ascii=False), content_type="application/json")


def console_user(request: web.Request, tokens: TokenIssuer) -> ConsoleUser:
    """An administrator of the bureau or of one school; 401 without credentials, 403 for other roles."""
    claims = bearer_claims(request, tokens)
    if claims.role != Role.ADMIN:
        raise _forbidden(f"admin token required (this one is {claims.role})")
    return ConsoleUser(claims)

