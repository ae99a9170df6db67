"""Who may do what in lesson study, patrol and reports, from a join token's claims.

- admins: everything, and the only readers of usage reports;
- observers (inspectors, researchers) with ``lesson: "*"``: every recording — watch, comment,
  evaluate — and patrol;
- an observer token for one lesson (the links ``POST /api/lessons/{id}/tokens`` and the patrol
  tiles mint): that lesson's recordings — watch, comment, evaluate; no patrol;
- a master classroom's token: its own lesson's recordings, analysis, comments and evaluations (read);
- a rural classroom's token: its own lesson's recordings and analysis;
- a school admin's or a teacher's login (`sfu.scope`): the recordings of the lessons it covers, to watch.

The author of comments and evaluations is the token's ``sub`` when it has one (each minted
token its own author), else its role, classroom claim and name.
"""

from __future__ import annotations

from dataclasses import dataclass

from recorder.http_api import may_watch_lesson
from sfu.lessons import Role
from sfu.scope import is_full_admin, sees_all
from sfu.tokens import Claims


@dataclass(frozen=True)
class Author:
    key: str  # stable identity of the writer: the token's `sub`, else role, classroom claim and name
    name: str
    role: str


@dataclass(frozen=True)
class Viewer:
    claims: Claims
    lessons: frozenset[str] = frozenset()  # a scoped login's lessons (sfu.scope: school admin, teacher)

    @property
    def role(self) -> Role:
        return self.claims.role

    @property
    def is_admin(self) -> bool:
        return is_full_admin(self.claims)  # a school admin's login is not one

    @property
    def sees_all(self) -> bool:
        return sees_all(self.claims)

    def may_watch(self, lesson_id: str) -> bool:
        return may_watch_lesson(self.claims, lesson_id) or lesson_id in self.lessons

    def may_read_study(self, lesson_id: str) -> bool:
        """Comments and evaluations."""
        return self.sees_all or (self.role in (Role.MASTER, Role.OBSERVER) and self.claims.lesson == lesson_id)

    @property
    def may_write_study(self) -> bool:
        """Writes comments and evaluations somewhere (admins, observers)."""
        return self.role in (Role.ADMIN, Role.OBSERVER)

    def may_write_study_on(self, lesson_id: str) -> bool:
        """Writes comments and evaluations on this lesson's recordings."""
        return self.sees_all or (self.role == Role.OBSERVER and self.claims.lesson == lesson_id)

    @property
    def may_patrol(self) -> bool:
        return self.sees_all

    @property
    def may_report(self) -> bool:
        return self.is_admin

    @property
    def author(self) -> Author:
        c = self.claims
        name = c.name or c.classroom or str(c.role)
        key = f"sub:{c.sub}" if c.sub else f"{c.role}:{c.classroom}:{name}"
        return Author(key=key, name=name, role=str(c.role))
