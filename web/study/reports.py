"""Usage reports: for a date range, per rural classroom, school, county or subject.

The unit is a *classroom lesson*: one rural classroom's part in one lesson.

- scheduled: classroom lessons whose lesson has a planned start in the range (what
  `twinclass schedule apply` creates from the timetable);
- held: scheduled classroom lessons the classroom actually joined (the attendance log has a
  session of it as a rural classroom); 开课率 = held / scheduled;
- unscheduled: classroom lessons without a planned time that the classroom joined in the range;
- minutes: time the classroom was connected, over all its sessions of the counted lessons;
- recordings, comments, evaluations: of the recordings of the lessons the group held (each
  recording counted once per group, however many of the group's classrooms took part).

Planned times are the server's local time; attendance is in UTC; the range is local dates.
"""

from __future__ import annotations

import csv
import io
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from recorder.catalog import RecordingCatalog, RecordingFilter
from sfu.lessons import Lesson
from sfu.store import AttendanceLog, LessonStore
from web.study.comments import CommentStore
from web.study.directory import Directory, Place
from web.study.rubric import RubricStore

GROUPS = ("classroom", "school", "county", "subject")


@dataclass
class UsageRow:
    key: str
    classroom: str = ""
    classroom_name: str = ""
    school: str = ""
    county: str = ""
    subject: str = ""
    scheduled: int = 0
    held: int = 0
    unscheduled: int = 0
    minutes: float = 0.0
    lessons: set[str] = field(default_factory=set)
    recordings: set[str] = field(default_factory=set)
    comments: int = 0
    evaluations: int = 0

    @property
    def rate(self) -> float | None:
        return round(100 * self.held / self.scheduled, 1) if self.scheduled else None

    def to_json(self, group: str) -> dict[str, Any]:
        out: dict[str, Any] = {"key": self.key}
        if group == "classroom":
            out.update(classroom=self.classroom, classroom_name=self.classroom_name, school=self.school,
                       county=self.county)
        elif group == "school":
            out.update(school=self.school, county=self.county)
        elif group == "county":
            out.update(county=self.county)
        else:
            out.update(subject=self.subject)
        out.update(scheduled=self.scheduled, held=self.held, rate_percent=self.rate, unscheduled=self.unscheduled,
                   minutes=round(self.minutes, 2), recordings=len(self.recordings), comments=self.comments,
                   evaluations=self.evaluations)
        return out


def local_day(dt: datetime, *, utc: bool) -> date:
    """The server-local calendar day of a stored time (attendance: naive UTC; plans: naive local)."""
    if utc:
        return dt.replace(tzinfo=UTC).astimezone().date()
    return dt.astimezone().date() if dt.tzinfo else dt.date()


def _minutes(row: dict[str, Any], now: datetime) -> float:
    joined = row["joined_at"]
    left = row["left_at"] or now
    return max(0.0, (left - joined).total_seconds() / 60)


def usage(lessons: Iterable[Lesson], attendance: Iterable[dict[str, Any]], recordings: Iterable[Any],
          comments: Counter[str], evaluations: Counter[str], directory: Directory, *, since: date, until: date,
          group: str = "classroom", county: str = "", now: datetime | None = None) -> dict[str, Any]:
    """The report as JSON: {"rows": [...], "total": {...}, ...}. `recordings`: catalog records."""
    if group not in GROUPS:
        raise ValueError(f"group: one of {', '.join(GROUPS)}")
    now_utc = (now or datetime.now(UTC)).astimezone(UTC).replace(tzinfo=None)
    sessions: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for a in attendance:
        if a["role"] != "rural":
            continue
        sessions.setdefault((a["lesson_id"], a["classroom"]), []).append(a)
    by_lesson_recordings: dict[str, list[str]] = {}
    for r in recordings:
        by_lesson_recordings.setdefault(r.lesson_id, []).append(r.id)

    rows: dict[str, UsageRow] = {}
    total = UsageRow(key="total")

    def row_for(lesson: Lesson, place: Place) -> UsageRow:
        if group == "classroom":
            key = place.classroom
        elif group == "school":
            key = place.school or "?"
        elif group == "county":
            key = place.county or "?"
        else:
            key = lesson.subject or "?"
        row = rows.get(key)
        if row is None:
            row = rows[key] = UsageRow(key=key)
            if group == "classroom":
                row.classroom, row.classroom_name = place.classroom, place.name
            if group in ("classroom", "school"):
                row.school = place.school
            if group in ("classroom", "school", "county"):
                row.county = place.county
            row.subject = lesson.subject if group == "subject" else ""
        return row

    for lesson in lessons:
        planned = lesson.planned_start is not None
        if planned:
            assert lesson.planned_start is not None
            if not since <= local_day(lesson.planned_start, utc=False) <= until:
                continue
        for place in directory.places(lesson):
            if place.role != "rural" or (county and place.county != county):
                continue
            mine = sessions.get((lesson.id, place.classroom), [])
            if not planned:
                mine = [s for s in mine if since <= local_day(s["joined_at"], utc=True) <= until]
                if not mine:
                    continue
            row = row_for(lesson, place)
            for target in (row, total):
                if planned:
                    target.scheduled += 1
                    target.held += bool(mine)
                else:
                    target.unscheduled += 1
                target.minutes += sum(_minutes(s, now_utc) for s in mine)
                if mine:
                    target.lessons.add(lesson.id)
                    target.recordings.update(by_lesson_recordings.get(lesson.id, []))
    for row in [*rows.values(), total]:
        row.comments = sum(comments.get(r, 0) for r in row.recordings)
        row.evaluations = sum(evaluations.get(r, 0) for r in row.recordings)
    ordered = sorted(rows.values(), key=lambda r: (r.county, r.school, r.key))
    return {
        "from": since.isoformat(), "to": until.isoformat(), "group": group, "county": county or None,
        "rows": [r.to_json(group) for r in ordered],
        "total": total.to_json("total"),
    }


def usage_between(store: LessonStore, attendance: AttendanceLog, catalog: RecordingCatalog, comments: CommentStore,
                  rubrics: RubricStore, directory: Directory, *, since: date, until: date, group: str = "classroom",
                  county: str = "", now: datetime | None = None) -> dict[str, Any]:
    """`usage` over what the range needs, selected in SQL (no cap on lessons or recordings):
    lessons planned in the range, lessons without a plan joined in the range, their attendance,
    recordings, comments and evaluations. Blocking: run it off the event loop."""
    start = datetime.combine(since, datetime.min.time())  # server-local, as planned times are kept
    end = datetime.combine(until + timedelta(days=1), datetime.min.time())
    lessons = store.planned_between(start, end)
    planned = {lesson.id for lesson in lessons}
    joined = {str(a["lesson_id"]) for a in attendance.rows(since=start.astimezone(), until=end.astimezone())}
    lessons += [lesson for lesson in store.get_many(joined - planned) if lesson.planned_start is None]
    ids = [lesson.id for lesson in lessons]
    records = catalog.list(RecordingFilter(lessons=ids, limit=None))
    rec_ids = [r.id for r in records]
    return usage(lessons, attendance.rows(lesson_ids=ids), records, comments.counts(rec_ids), rubrics.counts(rec_ids),
                 directory, since=since, until=until, group=group, county=county, now=now)


CSV_COLUMNS = {
    "classroom": ("classroom", "classroom_name", "school", "county"),
    "school": ("school", "county"),
    "county": ("county",),
    "subject": ("subject",),
}
CSV_FIGURES = ("scheduled", "held", "rate_percent", "unscheduled", "minutes", "recordings", "comments", "evaluations")


def to_csv(report: dict[str, Any]) -> str:
    """The report as CSV (UTF-8 with a BOM so spreadsheet programs read the Chinese names)."""
    group = report["group"]
    columns = (*CSV_COLUMNS[group], *CSV_FIGURES)
    buf = io.StringIO()
    buf.write("\ufeff")
    writer = csv.writer(buf, lineterminator="\r\n")
    writer.writerow(columns)
    for row in report["rows"]:
        writer.writerow(["" if row.get(c) is None else row.get(c) for c in columns])
    total = report["total"]
    writer.writerow(["合计 total", *[""] * (len(CSV_COLUMNS[group]) - 1),
                     *["" if total.get(c) is None else total.get(c) for c in CSV_FIGURES]])
    return buf.getvalue()


def parse_range(since: date | None, until: date | None, today: date | None = None) -> tuple[date, date]:
    """?from=YYYY-MM-DD&to=YYYY-MM-DD (inclusive, parsed and bounded by `twinclass.http_input`);
    default: the last 30 days up to today."""
    today = today or datetime.now().date()
    end = until or today
    start = since or end - timedelta(days=29)
    if start > end:
        raise ValueError("from: must not be after to")
    if (end - start).days > 366 * 5:
        raise ValueError("range: at most five years")
    return start, end
