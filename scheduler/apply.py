"""Turn one week of the timetable into live lessons (with join tokens) through a LessonPort.

One lesson per master class occurring that week with the rural classrooms assigned to it.
Lesson ids are deterministic (`tt-<date>-<class>`), so applying the same week twice creates
nothing new. When a stored lesson of that id has other classrooms or times (the timetable was
solved again), it is updated to the new timetable and the differences are reported; a store that
cannot update it leaves it as it was and reports an error (no tokens are issued for it).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from scheduler.ports import LessonExists, LessonPort
from scheduler.timetable import Timetable

_KIND_TITLES = {"twinning": "同步课堂", "broadcast": "名师课堂"}
_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


@dataclass
class AppliedLesson:
    id: str
    lesson: dict[str, Any]
    created: bool  # False: it already existed
    tokens: dict[str, str] = field(default_factory=dict)  # classroom id -> token
    error: str = ""
    updated: bool = False  # it existed with other classrooms or times and was updated
    changes: list[str] = field(default_factory=list)  # how the stored lesson differed, e.g. "+ rural c2"

    @property
    def state(self) -> str:
        if self.error:
            return f"error: {self.error}"
        if self.created:
            return "created"
        if self.updated:
            return "updated: " + "; ".join(self.changes)
        return "already exists"


def _instant(value: Any) -> datetime | None:
    """An ISO date-time as an aware instant (a naive one is the store's local time)."""
    if not value:
        return None
    try:
        at = datetime.fromisoformat(str(value))
    except ValueError:
        return None
    return at if at.tzinfo is not None else at.astimezone()


def lesson_differences(existing: dict[str, Any], lesson: dict[str, Any]) -> list[str]:
    """How a stored lesson differs from the one the timetable asks for: classrooms and times."""
    out = []
    old_master, new_master = (existing.get("master") or {}).get("id"), lesson["master"]["id"]
    if old_master != new_master:
        out.append(f"master {old_master} → {new_master}")
    old = {r.get("id") for r in existing.get("rurals") or []}
    new = {r["id"] for r in lesson["rurals"]}
    out += [f"+ rural {r}" for r in sorted(new - old)]
    out += [f"- rural {r}" for r in sorted(old - new, key=str)]
    if existing.get("kind", "twinning") != lesson.get("kind", "twinning"):
        out.append(f"kind {existing.get('kind', 'twinning')} → {lesson.get('kind', 'twinning')}")
    for key in ("planned_start", "planned_end"):
        if _instant(existing.get(key)) != _instant(lesson[key]):
            out.append(f"{key} {existing.get(key)} → {lesson[key]}")
    return out


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
    for k, mc in d["classes"].items():  # a broadcast is given to its listening classrooms even with no others
        if mc.get("listeners"):
            joined.setdefault(k, [])
    out = []
    for k, rooms in sorted(joined.items()):
        mc = d["classes"][k]
        kind = mc.get("kind", "twinning")  # timetables solved before kinds existed: twinning
        day = monday + timedelta(days=mc["weekday"] - 1)
        if day < term_start or day > term_end or day in holidays:
            continue
        teacher = d["teachers"][mc["teacher"]]
        start = datetime.combine(day, datetime.strptime(mc["start"], "%H:%M").time(), tz)
        end = datetime.combine(day, datetime.strptime(mc["end"], "%H:%M").time(), tz)
        out.append({
            "id": lesson_id(day, k),
            "title": f"{mc['subject']} {mc['grade']}年级 · {teacher['name']}（{_KIND_TITLES[kind]}）",
            "kind": kind,
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
            "listeners": [{"id": c, "name": d["classrooms"][c]["name"]} for c in mc.get("listeners", [])],
        })
    return out


def apply_week(tt: Timetable, week: date, port: LessonPort, *, now: datetime | None = None) -> list[AppliedLesson]:
    now = now or datetime.now(UTC)
    out = []
    for lesson in week_lessons(tt, week):
        try:
            lid = port.create_lesson(lesson)
            item = AppliedLesson(lid, lesson, created=True)
        except LessonExists as exc:
            item = AppliedLesson(exc.lesson_id, lesson, created=False)
            if exc.existing is None:
                item.error = "it already exists and the store did not say with which classrooms; not changed"
                out.append(item)
                continue
            item.changes = lesson_differences(exc.existing, lesson)
            if item.changes:
                try:
                    port.update_lesson(lesson)
                except ValueError as update_exc:
                    item.error = (f"it already exists with other classrooms or times ({'; '.join(item.changes)}) "
                                  f"and could not be updated ({update_exc}); not changed, no tokens issued")
                    out.append(item)
                    continue
                item.updated = True
        except ValueError as exc:
            out.append(AppliedLesson(lesson["id"], lesson, created=False, error=str(exc)))
            continue
        end = datetime.fromisoformat(lesson["planned_end"])
        ttl = max(3600.0, (end - now).total_seconds() + 3600.0)
        master = lesson["master"]
        item.tokens[master["id"]] = port.mint_token(lesson=item.id, classroom=master["id"], name=master["name"],
                                                    role="master", ttl_s=ttl)
        for r in lesson["rurals"]:
            item.tokens[r["id"]] = port.mint_token(lesson=item.id, classroom=r["id"], name=r["name"],
                                                   role="rural", ttl_s=ttl)
        for c in lesson["listeners"]:
            item.tokens[c["id"]] = port.mint_token(lesson=item.id, classroom=c["id"], name=c["name"],
                                                   role="listener", ttl_s=ttl)
        out.append(item)
    return out
