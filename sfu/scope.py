"""Which lessons a request's claims reach: one rule for the lesson API, the recordings and the pages.

- an admin without a school (the bureau; every admin JWT): every lesson, and everything else;
- an observer whose lesson is ``"*"`` (inspectors, researchers): every lesson, to watch;
- an admin scoped to a school (a school admin's login): the lessons with a classroom of that
  school, the master's or a rural one (both schools of a twinning pair run the lesson);
- a master whose lesson is ``"*"`` (a teacher's login): the lessons whose master classroom is the
  claims' ``classroom``;
- any other token: its own lesson.
"""

from __future__ import annotations

from collections.abc import Iterable

from sfu.lessons import Lesson, Role
from sfu.tokens import Claims

ALL_LESSONS = "*"  # the `lesson` claim for every lesson (observers: all; a teacher's login: all of theirs)


def is_full_admin(claims: Claims) -> bool:
    """An administrator of everything (not scoped to a school)."""
    return claims.role == Role.ADMIN and not claims.school


def sees_all(claims: Claims) -> bool:
    """Full admins, and observers whose token is for every lesson (`lesson: "*"`)."""
    return is_full_admin(claims) or (claims.role == Role.OBSERVER and claims.lesson == ALL_LESSONS)


def is_scoped(claims: Claims) -> bool:
    """Claims whose lessons are found by a rule (school, master classroom), not named by one id."""
    return (claims.role == Role.ADMIN and bool(claims.school)) or (
        claims.role == Role.MASTER and claims.lesson == ALL_LESSONS)


def covers(claims: Claims, lesson: Lesson) -> bool:
    """May these claims read this lesson (and its recordings)?"""
    if sees_all(claims):
        return True
    if claims.role == Role.ADMIN:
        return claims.school in {c.school for c in lesson.classrooms}
    if claims.role == Role.MASTER and claims.lesson == ALL_LESSONS:
        return bool(claims.classroom) and lesson.master.id == claims.classroom
    return claims.lesson == lesson.id


def covered(claims: Claims, lessons: Iterable[Lesson]) -> list[Lesson]:
    return [lesson for lesson in lessons if covers(claims, lesson)]
