"""Read-only views of a timetable for one classroom, one teacher or one county (JSON and HTML)."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from scheduler.model import WEEKDAY_NAMES, WEEKDAY_ZH
from scheduler.timetable import Timetable


class NotFound(KeyError):
    """No such classroom, teacher or county in the timetable."""


def _weekdays(days: set[int]) -> list[dict[str, Any]]:
    return [{"n": d, "zh": WEEKDAY_ZH[d], "en": WEEKDAY_NAMES[d]} for d in sorted(days or {1, 2, 3, 4, 5})]


def _lesson(tt: Timetable, a: Any) -> dict[str, Any]:
    d = tt.directory
    teacher = d.get("teachers", {}).get(a.teacher, {})
    return {"class": a.cls, "subject": a.subject, "grade": a.grade, "start": a.start, "end": a.end,
            "teacher": a.teacher, "teacher_name": teacher.get("name", a.teacher),
            "master_school": teacher.get("school_name", ""), "partner": a.partner}


def classroom_view(tt: Timetable, cid: str) -> dict[str, Any]:
    room = tt.directory.get("classrooms", {}).get(cid)
    if room is None:
        raise NotFound(cid)
    bells = tt.directory.get("bells", {}).get(room["school"], [])
    busy = {(d, p) for d, p in room.get("busy", [])}
    mine = [a for a in tt.assignments if a.classroom == cid]
    by_slot = {(a.weekday, a.period): a for a in mine}
    days = {b[0] for b in bells}
    numbers = sorted({b[1] for b in bells})
    rows = []
    for n in numbers:
        times = sorted({(b[2], b[3]) for b in bells if b[1] == n})
        cells: dict[int, dict[str, Any]] = {}
        for d in sorted(days):
            a = by_slot.get((d, n))
            if a is not None:
                cells[d] = {"lesson": _lesson(tt, a)}
            elif (d, n) in busy:
                cells[d] = {"local": True}
            else:
                cells[d] = {}
        rows.append({"period": n, "time": " / ".join(f"{s}-{e}" for s, e in times), "cells": cells})
    return {
        "kind": "classroom", "id": cid, "name": room["name"], "school_name": room["school_name"],
        "county": room["county"], "grades": room["grades"], "needs": room["needs"],
        "weekdays": _weekdays(days), "rows": rows,
        "lessons": [{"weekday": a.weekday, "period": a.period, **_lesson(tt, a)} for a in mine],
        "unmet": [u for u in tt.unmet if u["classroom"] == cid], "settings": tt.settings, "timetable": tt.id,
    }


def teacher_view(tt: Timetable, tid: str) -> dict[str, Any]:
    teacher = tt.directory.get("teachers", {}).get(tid)
    if teacher is None:
        raise NotFound(tid)
    rooms = tt.directory.get("classrooms", {})
    joined: dict[str, list[str]] = defaultdict(list)
    for a in tt.assignments:
        if a.teacher == tid:
            joined[a.cls].append(rooms.get(a.classroom, {}).get("name", a.classroom))
    classes = {k: v for k, v in tt.directory.get("classes", {}).items() if v["teacher"] == tid}
    slots = sorted({(v["start"], v["end"]) for v in classes.values()})
    days = {v["weekday"] for v in classes.values()} | {1, 2, 3, 4, 5}
    rows = []
    for s, e in slots:
        cells: dict[int, dict[str, Any]] = {}
        for k, v in sorted(classes.items()):
            if (v["start"], v["end"]) == (s, e):
                cells[v["weekday"]] = {"class": k, "subject": v["subject"], "grade": v["grade"],
                                       "capacity": v["capacity"], "classrooms": sorted(joined.get(k, []))}
        rows.append({"time": f"{s}-{e}", "cells": cells})
    return {
        "kind": "teacher", "id": tid, "name": teacher["name"], "school_name": teacher["school_name"],
        "county": teacher["county"], "weekdays": _weekdays(days), "rows": rows,
        "remote_classrooms": sorted({n for names in joined.values() for n in names}),
        "settings": tt.settings, "timetable": tt.id,
    }


def county_view(tt: Timetable, county: str) -> dict[str, Any]:
    rooms = {cid: r for cid, r in tt.directory.get("classrooms", {}).items() if r["county"] == county}
    if not rooms:
        raise NotFound(county)
    lessons = []
    for a in tt.assignments:
        if a.classroom in rooms:
            r = rooms[a.classroom]
            lessons.append({"classroom": a.classroom, "classroom_name": r["name"], "school_name": r["school_name"],
                            "weekday": a.weekday, "weekday_zh": WEEKDAY_ZH.get(a.weekday, str(a.weekday)),
                            "period": a.period, **_lesson(tt, a)})
    lessons.sort(key=lambda x: (x["school_name"], x["classroom"], x["weekday"], x["start"]))
    need = sum(sum(r["needs"].values()) for r in rooms.values())
    return {
        "kind": "county", "county": county, "classrooms": len(rooms), "need": need, "covered": len(lessons),
        "lessons": lessons, "unmet": [u for u in tt.unmet if u["classroom"] in rooms],
        "settings": tt.settings, "timetable": tt.id,
    }


def counties(tt: Timetable) -> list[str]:
    return sorted({r["county"] for r in tt.directory.get("classrooms", {}).values()})
