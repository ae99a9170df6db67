"""From a login's ID-token claims to our roles (`sfu.tokens.Claims`): one documented rule.

The provider's role values are read from the claim `--oidc-roles-claim` (default `roles`; when
the ID token lacks it, `groups` is read instead), a list of strings or one string of values
separated by spaces or commas. The first of these that the person holds decides:

| value | Twinclass claims | reaches (sfu.scope) |
|---|---|---|
| `bureau-admin` | admin | everything |
| `school-admin` (+ a `school` claim) | admin scoped to `school` | lessons with a classroom of that school |
| `teacher` (+ `classroom`: their master classroom's id) | master, lesson `*` | lessons with that master classroom |
| `observer`, `researcher` | observer, lesson `*` | every lesson: recordings library, patrol wall |

Anything else (no role, a school admin without `school`, a teacher without `classroom`) is no
role at all: the login is refused with a 403 page, and no session is made.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from sfu.lessons import Role
from sfu.scope import ALL_LESSONS
from sfu.tokens import Claims

BUREAU_ADMIN = "bureau-admin"
SCHOOL_ADMIN = "school-admin"
TEACHER = "teacher"
OBSERVERS = ("observer", "researcher")
FALLBACK_CLAIM = "groups"


class NoRole(Exception):
    """A person this rule gives no role; the message says why (shown on the 403 page)."""


@dataclass(frozen=True)
class Identity:
    claims: Claims
    roles: list[str]  # the provider's values that counted


@dataclass(frozen=True)
class RoleRule:
    claim: str = "roles"
    school_claim: str = "school"
    classroom_claim: str = "classroom"

    def values(self, id_claims: dict[str, object]) -> list[str]:
        raw = id_claims.get(self.claim)
        if raw is None:
            raw = id_claims.get(FALLBACK_CLAIM)
        if isinstance(raw, str):
            return [v for v in re.split(r"[\s,]+", raw) if v]
        if isinstance(raw, list):
            return [v for v in raw if isinstance(v, str) and v]
        return []

    def identity(self, id_claims: dict[str, object], exp: int) -> Identity:
        """The claims a login resolves to; NoRole if it gives none."""
        values = self.values(id_claims)
        sub = id_claims.get("sub")
        if not isinstance(sub, str) or not sub:
            raise NoRole("the ID token has no subject")
        name = id_claims.get("name")
        name = name if isinstance(name, str) and name else sub

        def claims(lesson: str, classroom: str, role: Role, school: str = "") -> Claims:
            return Claims(lesson=lesson, classroom=classroom, name=name, role=role, exp=exp,
                          sub=f"oidc:{sub}", school=school)  # one author across logins

        school = _string(id_claims.get(self.school_claim))
        classroom = _string(id_claims.get(self.classroom_claim))
        if BUREAU_ADMIN in values:
            return Identity(claims("", "", Role.ADMIN), [BUREAU_ADMIN])
        if SCHOOL_ADMIN in values:
            if not school:
                raise NoRole(f"{SCHOOL_ADMIN} without a '{self.school_claim}' claim")
            return Identity(claims("", "", Role.ADMIN, school), [SCHOOL_ADMIN])
        if TEACHER in values:
            if not classroom:
                raise NoRole(f"{TEACHER} without a '{self.classroom_claim}' claim (the master classroom's id)")
            return Identity(claims(ALL_LESSONS, classroom, Role.MASTER), [TEACHER])
        held = [v for v in values if v in OBSERVERS]
        if held:
            return Identity(claims(ALL_LESSONS, "observer", Role.OBSERVER), held[:1])
        shown = ", ".join(values) if values else "none"
        raise NoRole(f"no Twinclass role in the '{self.claim}' claim (values: {shown})")


def _string(value: object) -> str:
    return value.strip() if isinstance(value, str) else ""
