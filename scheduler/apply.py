"""Turn one week of the timetable into live lessons (with join tokens) through a LessonPort.

One lesson per master class occurring that week with the rural classrooms assigned to it.
Lesson ids are deterministic (`tt-<date>-<class>`), so applying the same week twice creates
nothing new.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from scheduler.ports import LessonPort
from scheduler.timetable import Timetable

_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


@dataclass
class AppliedLesson:
    id: str
    lesson: dict[str, Any]
    created: bool  # False: it already existed
    tokens: dict[str, str] = field(default_factory=dict)  # classroom id -> token
    error: str = ""


def monday_of(day: date) -> date:
    return day - timedelta(days=day.isoweekday() - 1)


def lesson_id(day: date, class_id: str) -> str:
    lid = f"tt-{day:%Y%m%d}-{class_id}"
    if _ID_RE.match(lid):
        return lid
    digest = hashlib.sha1(class_id.encode()).hexdigest()[:10]
    return f"tt-{day:%Y%m%d}-{digest}"


def week_lessons(tt: Timetable, week: date) -> list[dict[str, Any]]:
    """The lesson JSON for every master class with rural classrooms in the week of `week`."""
    st = tt.settings
    tz = ZoneInfo(st.get("timezone", "Asia/Shanghai"))
    term_start, term_end = date.fromisoformat(st["term_start"]), date.fromisoformat(st["term_end"])
    holidays = {date.fromisoformat(h) for h in st.get("holidays", [])}
    monday = monday_of(week)
    d = tt.directory
    joined: dict[str, list[str]] = {}
    for a in tt.assignments:
        joined.setdefault(a.cls, []).append(a.classroom)
    out = []
    for k, rooms in sorted(joined.items()):
        mc = d["classes"][k]
        day = monday + timedelta(days=mc["weekday"] - 1)
        if day < term_start or day > term_end or day in holidays:
            continue
        teacher = d["teachers"][mc["teacher"]]
        start = datetime.combine(day, datetime.strptime(mc["start"], "%H:%M").time(), tz)
        end = datetime.combine(day, datetime.strptime(mc["end"], "%H:%M").time(), tz)
        out.append({
            "id": lesson_id(day, k),
            "title": f"{mc['subject']} {mc['grade']}年级 · {teacher['name']}（同步课堂）",
            "subject": mc["subject"],
            "grade": str(mc["grade"]),
            "master": {"id": mc["room"], "name": teacher["name"], "school": teacher["school_name"]},
            "rurals": [
                {"id": r, "name": d["classrooms"][r]["name"], "school": d["classrooms"][r]["school_name"]}
                for r in sorted(rooms)
            ],
            "planned_start": start.isoformat(),
            "planned_end": end.isoformat(),
            "rural_see_each_other": False,
            "record": True,
            "extra": {"timetable": tt.id, "class": k, "teacher": mc["teacher"]},
        })
    return out


def apply_week(tt: Timetable, week: date, port: LessonPort, *, now: datetime | None = None) -> list[AppliedLesson]:
    now = now or datetime.now(UTC)
    out = []
    for lesson in week_lessons(tt, week):
        try:
            lid = port.create_lesson(lesson)
            item = AppliedLesson(lid, lesson, created=True)
        except ValueError as exc:
            if "exist" not in str(exc):
                out.append(AppliedLesson(lesson["id"], lesson, created=False, error=str(exc)))
                continue
            item = AppliedLesson(lesson["id"], lesson, created=False)
        end = datetime.fromisoformat(lesson["planned_end"])
        ttl = max(3600.0, (end - now).total_seconds() + 3600.0)
        master = lesson["master"]
        item.tokens[master["id"]] = port.mint_token(lesson=item.id, classroom=master["id"], name=master["name"],
                                                    role="master", ttl_s=ttl)
        for r in lesson["rurals"]:
            item.tokens[r["id"]] = port.mint_token(lesson=item.id, classroom=r["id"], name=r["name"],
                                                   role="rural", ttl_s=ttl)
        out.append(item)
    return out
