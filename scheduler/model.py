"""The scheduling problem as plain, validated data: schools, rural classrooms, master classes."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import date

WEEKDAY_NAMES = {1: "Mon", 2: "Tue", 3: "Wed", 4: "Thu", 5: "Fri", 6: "Sat", 7: "Sun"}
WEEKDAY_ZH = {1: "周一", 2: "周二", 3: "周三", 4: "周四", 5: "周五", 6: "周六", 7: "周日"}
DEFAULT_CAPACITY = 3
MAX_CAPACITY = 8


def hhmm(minutes: int) -> str:
    """Minutes after midnight as 'HH:MM'."""
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


@dataclass(frozen=True)
class School:
    id: str
    name: str
    county: str
    kind: str  # "urban" (master teachers) or "rural" (teaching points, small schools)
    link_capacity: int | None = None  # remote lessons its uplink carries at once; None = no limit


@dataclass(frozen=True)
class Period:
    """One period of a school's bell schedule on one weekday (times in minutes after midnight)."""

    weekday: int
    number: int
    start: int
    end: int


@dataclass(frozen=True)
class Classroom:
    """A rural classroom (听讲教室): the grades it teaches and the subject periods it lacks."""

    id: str
    name: str
    school: str
    grades: frozenset[int]
    needs: dict[str, int] = field(default_factory=dict, hash=False, compare=False)
    busy: frozenset[tuple[int, int]] = frozenset()  # (weekday, period) taken by local lessons


@dataclass(frozen=True)
class Teacher:
    id: str
    name: str
    school: str
    max_classrooms: int | None = None  # distinct remote classrooms per week; None = no cap


@dataclass(frozen=True)
class MasterClass:
    """One weekly lesson a master teacher gives in the urban school, open to rural classrooms."""

    id: str
    teacher: str
    subject: str
    grade: int
    weekday: int
    start: int
    end: int
    capacity: int = DEFAULT_CAPACITY
    room: str = ""  # the master classroom id for live lessons; defaults to the teacher id
    kind: str = "twinning"  # or "broadcast" (名师课堂): assigned classrooms interact, `listeners` follow
    listeners: tuple[str, ...] = ()  # listening classrooms (听课教室) of a broadcast, beyond the solver's

    @property
    def master_room(self) -> str:
        return self.room or self.teacher


@dataclass(frozen=True)
class Settings:
    term_start: date
    term_end: date
    tolerance_min: int = 5
    timezone: str = "Asia/Shanghai"
    holidays: tuple[date, ...] = ()
    match_scope: str = "any"  # "county": rural classrooms join only master classes of their county


@dataclass
class Problem:
    """Everything the solver, the validator and the exporters need; built by `scheduler.inputs`."""

    settings: Settings
    schools: dict[str, School]
    bells: dict[str, list[Period]]  # school id -> periods (all weekdays)
    classrooms: dict[str, Classroom]
    teachers: dict[str, Teacher]
    classes: dict[str, MasterClass]
    partnerships: set[tuple[str, str]]  # (urban school, rural school)

    def school_of(self, classroom: str) -> School:
        return self.schools[self.classrooms[classroom].school]

    def teacher_school(self, class_id: str) -> School:
        return self.schools[self.teachers[self.classes[class_id].teacher].school]

    def school_days(self, school: str) -> int:
        return len({p.weekday for p in self.bells.get(school, [])}) or 5

    def day_limit(self, classroom: str, subject: str) -> int:
        """Most periods of one subject on one day: 1 unless the need exceeds the school days."""
        room = self.classrooms[classroom]
        need = room.needs.get(subject, 0)
        return max(1, math.ceil(need / self.school_days(room.school)))

    def free_periods(self, classroom: str) -> list[Period]:
        room = self.classrooms[classroom]
        return [p for p in self.bells.get(room.school, []) if (p.weekday, p.number) not in room.busy]

    def is_partner(self, class_id: str, classroom: str) -> bool:
        urban = self.teachers[self.classes[class_id].teacher].school
        return (urban, self.classrooms[classroom].school) in self.partnerships

    def in_scope(self, class_id: str, classroom: str) -> bool:
        if self.settings.match_scope != "county":
            return True
        return self.teacher_school(class_id).county == self.school_of(classroom).county

    @property
    def total_need(self) -> int:
        return sum(sum(c.needs.values()) for c in self.classrooms.values())


def fit_period(start: int, end: int, periods: list[Period], weekday: int, tolerance: int) -> Period | None:
    """The free period a class at [start, end) falls in (within the tolerance), best aligned first."""
    best: tuple[int, Period] | None = None
    for p in periods:
        if p.weekday != weekday:
            continue
        if start >= p.start - tolerance and end <= p.end + tolerance:
            dev = abs(start - p.start) + abs(end - p.end)
            if best is None or dev < best[0]:
                best = (dev, p)
    return best[1] if best else None


def deviation(start: int, end: int, period: Period) -> int:
    return abs(start - period.start) + abs(end - period.end)
