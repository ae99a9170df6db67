"""Lessons and classrooms: what a lesson is, and who may see whom in it.

Two kinds: a **twinning** lesson (专递课堂) joins one master classroom with one to eight rural
classrooms; a **broadcast** lesson (名师课堂) has the same interactive part (the master and up to
eight rural classrooms) and any number of listening classrooms (听课教室), which join with a
`listener` token naming their own classroom id: they receive the master, the courseware and the
classroom that has the floor, raise hands, and publish only while the master has brought them in.
"""

from __future__ import annotations

import enum
import re
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

MAX_RURAL_CLASSROOMS = 8  # interactive classrooms besides the master (a broadcast's brought-in listeners count)
TWINNING = "twinning"
BROADCAST = "broadcast"
KINDS = (TWINNING, BROADCAST)
CLASSROOM_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")  # lesson and classroom ids
_ID_RE = CLASSROOM_ID


class Role(enum.StrEnum):
    """What a participant may do in a lesson."""

    MASTER = "master"  # the master-teacher classroom: publishes, receives every rural classroom
    RURAL = "rural"  # a rural classroom: publishes, receives the master (and others if allowed)
    LISTENER = "listener"  # a listening classroom of a broadcast lesson: receives, raises hands; publishes
    # only while the master has brought it in (then it counts as one of the eight interactive classrooms)
    OBSERVER = "observer"  # watches everything, never publishes, invisible to classrooms
    ADMIN = "admin"  # manages lessons through the API
    SYSTEM = "system"  # the recorder and other hidden server-side participants
    RELAY = "relay"  # another node of the cluster taking the lesson's media for its viewers (sfu.cascade)


class LessonError(ValueError):
    """A lesson definition that cannot be accepted (the message says which field)."""


class LessonExists(LessonError):
    """A lesson with this id is already stored."""

    def __init__(self, lesson_id: str) -> None:
        super().__init__(f"id: lesson {lesson_id!r} already exists")
        self.lesson_id = lesson_id


@dataclass(frozen=True)
class Classroom:
    id: str
    name: str
    school: str = ""

    def to_json(self) -> dict[str, str]:
        return {"id": self.id, "name": self.name, "school": self.school}


@dataclass
class Lesson:
    """One master classroom and one to eight rural classrooms (a broadcast: zero to eight, and
    any number of listening classrooms, who are not listed)."""

    id: str
    title: str
    subject: str
    grade: str
    master: Classroom
    rurals: list[Classroom]
    planned_start: datetime | None = None
    planned_end: datetime | None = None
    rural_see_each_other: bool = False
    record: bool = True
    created_at: datetime | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    kind: str = TWINNING

    @property
    def broadcast(self) -> bool:
        return self.kind == BROADCAST

    def classroom(self, classroom_id: str) -> Classroom | None:
        if self.master.id == classroom_id:
            return self.master
        for c in self.rurals:
            if c.id == classroom_id:
                return c
        return None

    def role_of(self, classroom_id: str) -> Role | None:
        if self.master.id == classroom_id:
            return Role.MASTER
        if any(c.id == classroom_id for c in self.rurals):
            return Role.RURAL
        return None

    @property
    def classrooms(self) -> list[Classroom]:
        return [self.master, *self.rurals]

    def validate(self) -> None:
        if not _ID_RE.match(self.id):
            raise LessonError(f"id: {self.id!r} must be 1-64 letters, digits, '_', '.' or '-'")
        if not self.title.strip():
            raise LessonError("title: must not be empty")
        if self.kind not in KINDS:
            raise LessonError(f"kind: {self.kind!r} is not one of {', '.join(KINDS)}")
        least = 0 if self.broadcast else 1
        if not least <= len(self.rurals) <= MAX_RURAL_CLASSROOMS:
            raise LessonError(f"rurals: a {self.kind} lesson has {least} to {MAX_RURAL_CLASSROOMS} rural classrooms")
        ids = [c.id for c in self.classrooms]
        for cid in ids:
            if not _ID_RE.match(cid):
                raise LessonError(f"classroom id {cid!r} must be 1-64 letters, digits, '_', '.' or '-'")
        if len(set(ids)) != len(ids):
            raise LessonError("classrooms: ids must be unique within a lesson")
        if self.planned_start and self.planned_end and self.planned_end <= self.planned_start:
            raise LessonError("planned_end: must be after planned_start")

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.kind,
            "title": self.title,
            "subject": self.subject,
            "grade": self.grade,
            "master": self.master.to_json(),
            "rurals": [c.to_json() for c in self.rurals],
            "planned_start": self.planned_start.isoformat() if self.planned_start else None,
            "planned_end": self.planned_end.isoformat() if self.planned_end else None,
            "rural_see_each_other": self.rural_see_each_other,
            "record": self.record,
            "created_at": self.created_at.isoformat() if self.created_at else None,
            "extra": self.extra,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Lesson:
        """Build a lesson from API JSON; raises LessonError naming the bad field."""
        if not isinstance(data, dict):
            raise LessonError("body: must be a JSON object")

        def text(key: str, default: str | None = None) -> str:
            value = data.get(key, default)
            if not isinstance(value, str):
                raise LessonError(f"{key}: must be a string")
            return value

        def room(value: Any, where: str) -> Classroom:
            if isinstance(value, str):
                return Classroom(id=value, name=value)
            if not isinstance(value, dict) or not isinstance(value.get("id"), str):
                raise LessonError(f"{where}: must be an object with an 'id' string")
            return Classroom(
                id=value["id"], name=str(value.get("name") or value["id"]), school=str(value.get("school", ""))
            )

        def when(key: str) -> datetime | None:
            value = data.get(key)
            if value in (None, ""):
                return None
            try:
                return datetime.fromisoformat(str(value))
            except ValueError as exc:
                raise LessonError(f"{key}: not an ISO 8601 date-time ({value!r})") from exc

        rurals_raw = data.get("rurals")
        if not isinstance(rurals_raw, list):
            raise LessonError("rurals: must be a list of classrooms")
        see = data.get("rural_see_each_other", False)
        record = data.get("record", True)
        if not isinstance(see, bool) or not isinstance(record, bool):
            raise LessonError("rural_see_each_other/record: must be true or false")
        kind = data.get("kind", TWINNING)
        if kind not in KINDS:
            raise LessonError(f"kind: must be one of {', '.join(KINDS)}")
        lesson = cls(
            id=text("id", uuid.uuid4().hex[:12]),
            title=text("title"),
            subject=text("subject", ""),
            grade=str(data.get("grade", "")),
            master=room(data.get("master"), "master"),
            rurals=[room(r, f"rurals[{i}]") for i, r in enumerate(rurals_raw)],
            planned_start=when("planned_start"),
            planned_end=when("planned_end"),
            rural_see_each_other=see,
            record=record,
            extra=dict(data.get("extra") or {}),
            kind=kind,
        )
        lesson.validate()
        return lesson
