"""Write a timetable out: JSON, a CSV per county, unmet needs as CSV, an iCalendar file per rural
classroom and per master teacher (weekly recurrence over the term), and printable HTML pages."""

from __future__ import annotations

import csv
import json
import re
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from icalendar import Calendar, Event

from scheduler.model import WEEKDAY_ZH
from scheduler.ports import HtmlRenderer
from scheduler.timetable import Assignment, Timetable
from scheduler.views import classroom_view, counties, county_view, teacher_view

COUNTY_COLUMNS = ("county", "school", "classroom", "classroom_name", "weekday", "weekday_zh", "period", "start",
                  "end", "subject", "grade", "teacher", "teacher_name", "master_school", "class", "partner")
UNMET_COLUMNS = ("county", "school_name", "classroom", "classroom_name", "subject", "need", "covered", "missing",
                 "cause", "reason", "suggestion")


def safe_name(s: str) -> str:
    return re.sub(r"[^\w.-]+", "_", s, flags=re.UNICODE).strip("_") or "_"


def write_json(tt: Timetable, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(tt.to_json(), ensure_ascii=False, indent=1), encoding="utf-8")


def county_rows(tt: Timetable, county: str) -> list[dict[str, Any]]:
    rooms = tt.directory.get("classrooms", {})
    teachers = tt.directory.get("teachers", {})
    rows = []
    for a in tt.assignments:
        r = rooms.get(a.classroom, {})
        if r.get("county") != county:
            continue
        t = teachers.get(a.teacher, {})
        rows.append({"county": county, "school": r.get("school_name", ""), "classroom": a.classroom,
                     "classroom_name": r.get("name", ""), "weekday": a.weekday,
                     "weekday_zh": WEEKDAY_ZH.get(a.weekday, ""), "period": a.period, "start": a.start,
                     "end": a.end, "subject": a.subject, "grade": a.grade, "teacher": a.teacher,
                     "teacher_name": t.get("name", ""), "master_school": t.get("school_name", ""),
                     "class": a.cls, "partner": "是" if a.partner else ""})
    rows.sort(key=lambda r: (r["school"], r["classroom"], r["weekday"], r["start"]))
    return rows


def _write_csv(path: Path, columns: tuple[str, ...], rows: list[dict[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8-sig") as f:  # BOM: opens right in spreadsheets
        w = csv.DictWriter(f, fieldnames=columns, extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)


def _first_on_or_after(start: date, weekday: int) -> date:
    return start + timedelta(days=(weekday - start.isoweekday()) % 7)


def _hm(s: str) -> time:
    h, m = s.split(":")
    return time(int(h), int(m))


def _event(tt: Timetable, uid: str, weekday: int, start: str, end: str, summary: str, description: str,
           location: str) -> Event | None:
    st = tt.settings
    tz = ZoneInfo(st.get("timezone", "Asia/Shanghai"))
    term_start, term_end = date.fromisoformat(st["term_start"]), date.fromisoformat(st["term_end"])
    first = _first_on_or_after(term_start, weekday)
    if first > term_end:
        return None
    ev = Event()
    ev.add("uid", f"{uid}@twinclass")
    ev.add("dtstamp", datetime.now(UTC))
    ev.add("summary", summary)
    ev.add("description", description)
    if location:
        ev.add("location", location)
    ev.add("dtstart", datetime.combine(first, _hm(start), tz))
    ev.add("dtend", datetime.combine(first, _hm(end), tz))
    until = datetime.combine(term_end, time(23, 59, 59), tz).astimezone(UTC)
    ev.add("rrule", {"freq": "weekly", "until": until})
    holidays = [date.fromisoformat(h) for h in st.get("holidays", [])]
    skipped = [datetime.combine(h, _hm(start), tz) for h in holidays
               if h.isoweekday() == weekday and first <= h <= term_end]
    if skipped:
        ev.add("exdate", skipped)
    return ev


def _calendar(name: str) -> Calendar:
    cal = Calendar()
    cal.add("prodid", "-//Twinclass//timetable//ZH")
    cal.add("version", "2.0")
    cal.add("x-wr-calname", name)
    return cal


def classroom_ics(tt: Timetable, cid: str) -> bytes:
    room = tt.directory["classrooms"][cid]
    cal = _calendar(f"{room['name']} 同步课堂")
    teachers = tt.directory.get("teachers", {})
    for a in (a for a in tt.assignments if a.classroom == cid):
        t = teachers.get(a.teacher, {})
        ev = _event(tt, f"{cid}.{a.cls}", a.weekday, a.start, a.end,
                    f"{a.subject} · {t.get('name', a.teacher)}（同步课堂）",
                    f"主讲：{t.get('name', a.teacher)}，{t.get('school_name', '')}\n"
                    f"Master class {a.cls}, grade {a.grade}, period {a.period}",
                    t.get("school_name", ""))
        if ev is not None:
            cal.add_component(ev)
    cal.add_missing_timezones()
    return cal.to_ical()


def teacher_ics(tt: Timetable, tid: str) -> bytes:
    teacher = tt.directory["teachers"][tid]
    cal = _calendar(f"{teacher['name']} 同步课堂")
    rooms = tt.directory.get("classrooms", {})
    by_class: dict[str, list[Assignment]] = {}
    for a in tt.assignments:
        if a.teacher == tid:
            by_class.setdefault(a.cls, []).append(a)
    for k, joined in sorted(by_class.items()):
        a = joined[0]
        names = [rooms.get(j.classroom, {}).get("name", j.classroom) for j in joined]
        ev = _event(tt, f"{tid}.{k}", a.weekday, a.start, a.end,
                    f"{a.subject} {a.grade}年级 同步课堂（{len(joined)}个远端教室）",
                    "远端教室 / rural classrooms: " + "、".join(names), teacher.get("school_name", ""))
        if ev is not None:
            cal.add_component(ev)
    cal.add_missing_timezones()
    return cal.to_ical()


def write_outputs(tt: Timetable, out: Path, *, render_html: HtmlRenderer | None = None) -> dict[str, int]:
    """Everything a bureau takes away; HTML pages only when a renderer is given (the web package's)."""
    """Everything a bureau hands out; returns counts of files written per kind."""
    out.mkdir(parents=True, exist_ok=True)
    write_json(tt, out / "timetable.json")
    counts = {"county_csv": 0, "classroom_ics": 0, "teacher_ics": 0, "html": 0}
    for county in counties(tt):
        _write_csv(out / "counties" / f"{safe_name(county)}.csv", COUNTY_COLUMNS, county_rows(tt, county))
        counts["county_csv"] += 1
    _write_csv(out / "unmet.csv", UNMET_COLUMNS, tt.unmet)
    cal_dir = out / "calendars"
    cal_dir.mkdir(exist_ok=True)
    for cid in sorted(tt.directory.get("classrooms", {})):
        (cal_dir / f"classroom-{safe_name(cid)}.ics").write_bytes(classroom_ics(tt, cid))
        counts["classroom_ics"] += 1
    for tid in sorted({a.teacher for a in tt.assignments}):
        (cal_dir / f"teacher-{safe_name(tid)}.ics").write_bytes(teacher_ics(tt, tid))
        counts["teacher_ics"] += 1
    if render_html is not None:
        counts["html"] = write_html(tt, out / "html", render_html)
    return counts


def write_html(tt: Timetable, out: Path, render: HtmlRenderer) -> int:
    out.mkdir(parents=True, exist_ok=True)
    n = 0
    for county in counties(tt):
        (out / f"county-{safe_name(county)}.html").write_text(render(county_view(tt, county)), "utf-8")
        n += 1
    for cid in sorted(tt.directory.get("classrooms", {})):
        (out / f"classroom-{safe_name(cid)}.html").write_text(render(classroom_view(tt, cid)), "utf-8")
        n += 1
    for tid in sorted({a.teacher for a in tt.assignments}):
        (out / f"teacher-{safe_name(tid)}.html").write_text(render(teacher_view(tt, tid)), "utf-8")
        n += 1
    return n
