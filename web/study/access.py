"""Who may do what in lesson study, patrol and reports, from a join token's claims.

- admins: everything, and the only readers of usage reports;
- observers (inspectors, researchers): every recording — watch, comment, evaluate — and patrol;
- a master classroom's token: its own lesson's recordings, analysis, comments and evaluations (read);
- a rural classroom's token: its own lesson's recordings and analysis.
"""

from __future__ import annotations

from dataclasses import dataclass

from sfu.lessons import Role
from sfu.tokens import Claims


@dataclass(frozen=True)
class Author:
    key: str  # stable identity of the writer (role, classroom claim and name)
    name: str
    role: str


@dataclass(frozen=True)
class Viewer:
    claims: Claims

    @property
    def role(self) -> Role:
        return self.claims.role

    @property
    def is_admin(self) -> bool:
        return self.role == Role.ADMIN

    @property
    def sees_all(self) -> bool:
        return self.role in (Role.ADMIN, Role.OBSERVER)

    def may_watch(self, lesson_id: str) -> bool:
        return self.sees_all or (self.role in (Role.MASTER, Role.RURAL) and self.claims.lesson == lesson_id)

    def may_read_study(self, lesson_id: str) -> bool:
        """Comments and evaluations."""
        return self.sees_all or (self.role == Role.MASTER and self.claims.lesson == lesson_id)

    @property
    def may_write_study(self) -> bool:
        return self.sees_all

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
        return Author(key=f"{c.role}:{c.classroom}:{name}", name=name, role=str(c.role))
