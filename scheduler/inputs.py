"""Validate input tables and build a `Problem`; every issue names its file, row and field."""

from __future__ import annotations

import re
from collections import defaultdict
from datetime import date
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from scheduler.errors import InputError, InputIssue
from scheduler.model import (
    DEFAULT_CAPACITY,
    MAX_CAPACITY,
    Classroom,
    MasterClass,
    Period,
    Problem,
    School,
    Settings,
    Teacher,
    hhmm,
)
from scheduler.tables import TABLES, Row, Tables

_DAY_WORDS = {
    "mon": 1, "tue": 2, "wed": 3, "thu": 4, "fri": 5, "sat": 6, "sun": 7,
    "周一": 1, "周二": 2, "周三": 3, "周四": 4, "周五": 5, "周六": 6, "周日": 7,
    "星期一": 1, "星期二": 2, "星期三": 3, "星期四": 4, "星期五": 5, "星期六": 6, "星期日": 7,
}  # fmt: skip
_TIME_RE = re.compile(r"^(\d{1,2}):(\d{2})$")
_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
# a master class's lesson kind: a twinning lesson (同步课堂/专递课堂) or a broadcast (名师课堂)
_CLASS_KINDS = {"": "twinning", "twinning": "twinning", "同步课堂": "twinning", "专递课堂": "twinning",
                "broadcast": "broadcast", "名师课堂": "broadcast"}
MAX_LISTENERS = 1000  # listening classrooms of one broadcast (as many as the lesson API issues tokens for)
_KINDS = {"urban": "urban", "城市": "urban", "城区": "urban", "rural": "rural", "农村": "rural", "乡村": "rural"}


class _Bad(ValueError):
    """A field value that cannot be used (message only; the caller adds the location)."""


def _text(v: Any) -> str:
    return "" if v is None else str(v).strip()


def parse_time(v: Any) -> int:
    s = _text(v)
    m = _TIME_RE.match(s)
    if not m:
        raise _Bad(f"{s!r} is not a time HH:MM")
    h, mi = int(m.group(1)), int(m.group(2))
    if h > 23 or mi > 59:
        raise _Bad(f"{s!r} is not a time of day (00:00-23:59)")
    return h * 60 + mi


def parse_int(v: Any, *, low: int | None = None, high: int | None = None) -> int:
    if isinstance(v, bool):
        raise _Bad(f"{v!r} is not a whole number")
    if isinstance(v, int):
        n = v
    else:
        s = _text(v)
        if isinstance(v, float) and v.is_integer():
            s = str(int(v))
        if not re.fullmatch(r"[+-]?\d+", s):
            raise _Bad(f"{s!r} is not a whole number")
        n = int(s)
    if low is not None and n < low:
        raise _Bad(f"{n} is below the minimum {low}")
    if high is not None and n > high:
        raise _Bad(f"{n} is above the maximum {high}")
    return n


def _optional_int(v: Any, *, low: int, high: int | None = None) -> int | None:
    return None if _text(v) == "" else parse_int(v, low=low, high=high)


def parse_weekday(v: Any) -> int:
    s = _text(v).lower()
    if s in _DAY_WORDS:
        return _DAY_WORDS[s]
    try:
        return parse_int(s, low=1, high=7)
    except _Bad:
        raise _Bad(f"{_text(v)!r} is not a weekday (1-7, Mon-Sun or 周一-周日)") from None


def parse_set(v: Any, item: Any, what: str) -> list[int]:
    """'1-5', '1,3,5', 'Mon-Fri' or a JSON list -> sorted distinct numbers."""
    parts: list[Any] = list(v) if isinstance(v, list) else re.split(r"[,;，、\s]+", _text(v))
    out: set[int] = set()
    for part in parts:
        if isinstance(part, int):
            out.add(item(part))
            continue
        p = _text(part)
        if not p:
            continue
        if "-" in p[1:] or "–" in p:
            a, b = re.split(r"(?<=.)[-–]", p, maxsplit=1)
            lo, hi = item(a), item(b)
            if hi < lo:
                raise _Bad(f"range {p!r} runs backwards")
            out.update(range(lo, hi + 1))
        else:
            out.add(item(p))
    if not out:
        raise _Bad(f"no {what} given")
    return sorted(out)


def parse_date(v: Any) -> date:
    s = _text(v)
    try:
        return date.fromisoformat(s)
    except ValueError:
        raise _Bad(f"{s!r} is not a date YYYY-MM-DD") from None


class _Builder:
    def __init__(self, tables: Tables) -> None:
        self.t = tables
        self.issues: list[InputIssue] = []

    def bad(self, row: Row, fld: str, msg: str) -> None:
        self.issues.append(InputIssue(row.file, row.row, fld, msg))

    def get(self, row: Row, fld: str, parse: Any) -> Any:
        """Parse one field; on failure record the issue and return None."""
        try:
            return parse(row.values.get(fld))
        except _Bad as exc:
            self.bad(row, fld, str(exc))
            return None

    def check_columns(self) -> None:
        for name, rows in self.t.tables.items():
            _, required = TABLES[name]
            for row in rows:
                for col in required:
                    if _text(row.values.get(col)) == "":
                        self.bad(row, col, "is required")

    def settings(self) -> Settings | None:
        row = self.t.settings

        def at(key: str) -> Row:
            label = self.t.settings_rows.get(key)
            return Row(row.file, label, row.values) if label else row

        start = self.get(at("term_start"), "term_start", parse_date)
        end = self.get(at("term_end"), "term_end", parse_date)
        tol_raw = row.values.get("tolerance_min")
        tol = 5 if _text(tol_raw) == "" else self.get(at("tolerance_min"), "tolerance_min",
                                                      lambda v: parse_int(v, low=0, high=60))
        tz = _text(row.values.get("timezone")) or "Asia/Shanghai"
        try:
            ZoneInfo(tz)
        except (ZoneInfoNotFoundError, ValueError):
            self.bad(at("timezone"), "timezone", f"{tz!r} is not a known time zone")
        hol_raw = row.values.get("holidays")
        hol_items = hol_raw if isinstance(hol_raw, list) else re.split(r"[,;\s]+", _text(hol_raw))
        holidays: list[date] = []
        for h in hol_items:
            if _text(h):
                d = self.get(at("holidays"), "holidays", lambda _v, h=h: parse_date(h))
                if d:
                    holidays.append(d)
        scope = _text(row.values.get("match_scope")) or "any"
        if scope not in ("any", "county"):
            self.bad(at("match_scope"), "match_scope", f"{scope!r} must be 'any' or 'county'")
        if start and end and end < start:
            self.bad(at("term_end"), "term_end", f"{end} is before term_start {start}")
            return None
        if start is None or end is None or tol is None:
            return None
        return Settings(start, end, tol, tz, tuple(sorted(holidays)), scope)

    def unique(self, rows: list[Row], fld: str = "id") -> dict[str, Row]:
        seen: dict[str, Row] = {}
        for row in rows:
            key = _text(row.values.get(fld))
            if not key:
                continue
            if not _ID_RE.match(key):
                self.bad(row, fld, f"{key!r} must be 1-64 letters, digits, '_', '.' or '-' (names may be Chinese)")
            if key in seen:
                self.bad(row, fld, f"{key!r} appears twice (first at row {seen[key].row})")
            else:
                seen[key] = row
        return seen

    def schools(self) -> dict[str, School]:
        out: dict[str, School] = {}
        for sid, row in self.unique(self.t.rows("schools")).items():
            kind_raw = _text(row.values.get("kind")).lower()
            kind = _KINDS.get(kind_raw)
            if kind is None and kind_raw:
                self.bad(row, "kind", f"{kind_raw!r} must be 'urban' or 'rural'")
            link = self.get(row, "link_capacity", lambda v: _optional_int(v, low=0))
            county = _text(row.values.get("county"))
            name = _text(row.values.get("name")) or sid
            if kind and county:
                out[sid] = School(sid, name, county, kind, link)
        return out

    def school_ref(self, row: Row, fld: str, schools: dict[str, School], kind: str) -> str | None:
        sid = _text(row.values.get(fld))
        if not sid:
            return None
        if sid not in schools:
            if any(_text(r.values.get("id")) == sid for r in self.t.rows("schools")):
                return None  # the school row itself is bad and already reported
            self.bad(row, fld, f"unknown school {sid!r} (not in schools)")
            return None
        if schools[sid].kind != kind:
            self.bad(row, fld, f"school {sid!r} is {schools[sid].kind}, expected a {kind} school")
            return None
        return sid

    def bells(self, schools: dict[str, School]) -> dict[str, list[Period]]:
        out: dict[str, list[Period]] = defaultdict(list)
        placed: dict[tuple[str, int], list[tuple[Period, Row]]] = defaultdict(list)
        for row in self.t.rows("bells"):
            sid = _text(row.values.get("school"))
            if sid and sid not in schools and not any(
                _text(r.values.get("id")) == sid for r in self.t.rows("schools")
            ):
                self.bad(row, "school", f"unknown school {sid!r} (not in schools)")
                continue
            days = self.get(row, "weekdays", lambda v: parse_set(v, parse_weekday, "weekday"))
            number = self.get(row, "period", lambda v: parse_int(v, low=1, high=20))
            start = self.get(row, "start", parse_time)
            end = self.get(row, "end", parse_time)
            if None in (days, number, start, end) or sid not in schools:
                continue
            if end <= start:
                self.bad(row, "end", f"{hhmm(end)} is not after start {hhmm(start)}")
                continue
            for d in days:
                p = Period(d, number, start, end)
                ok = True
                for q, qrow in placed[(sid, d)]:
                    if q.number == number:
                        self.bad(row, "period", f"period {number} on weekday {d} is already defined "
                                 f"at row {qrow.row}")
                        ok = False
                        break
                    if q.start < end and start < q.end:
                        self.bad(row, "start", f"{hhmm(start)}-{hhmm(end)} on weekday {d} overlaps period "
                                 f"{q.number} ({hhmm(q.start)}-{hhmm(q.end)}, row {qrow.row})")
                        ok = False
                        break
                if not ok:
                    break
                placed[(sid, d)].append((p, row))
                out[sid].append(p)
        return {k: sorted(v, key=lambda p: (p.weekday, p.start)) for k, v in out.items()}

    def classrooms(self, schools: dict[str, School], bells: dict[str, list[Period]]) -> dict[str, Classroom]:
        base: dict[str, Classroom] = {}
        rows = self.unique(self.t.rows("classrooms"))
        for cid, row in rows.items():
            sid = self.school_ref(row, "school", schools, "rural")
            grades = self.get(row, "grades", lambda v: parse_set(v, lambda x: parse_int(x, low=1, high=12),
                                                                 "grade"))
            if sid and sid not in bells:
                self.bad(row, "school", f"school {sid!r} has no bell schedule (no rows in bells)")
                sid = None
            if sid and grades:
                base[cid] = Classroom(cid, _text(row.values.get("name")) or cid, sid, frozenset(grades))
        needs: dict[str, dict[str, int]] = defaultdict(dict)
        seen_need: dict[tuple[str, str], Row] = {}
        for row in self.t.rows("needs"):
            cid = _text(row.values.get("classroom"))
            subject = _text(row.values.get("subject"))
            n = self.get(row, "periods", lambda v: parse_int(v, low=0, high=20))
            if cid and cid not in rows:
                self.bad(row, "classroom", f"unknown classroom {cid!r} (not in classrooms)")
                continue
            if (cid, subject) in seen_need:
                self.bad(row, "subject", f"{subject!r} for {cid!r} appears twice "
                         f"(first at row {seen_need[(cid, subject)].row})")
                continue
            seen_need[(cid, subject)] = row
            if n is not None and cid in base and subject:
                needs[cid][subject] = n
        busy: dict[str, set[tuple[int, int]]] = defaultdict(set)
        for row in self.t.rows("busy"):
            cid = _text(row.values.get("classroom"))
            if cid and cid not in rows:
                self.bad(row, "classroom", f"unknown classroom {cid!r} (not in classrooms)")
                continue
            day = self.get(row, "weekday", parse_weekday)
            nums = self.get(row, "periods", lambda v: parse_set(v, lambda x: parse_int(x, low=1), "period"))
            if day is None or nums is None or cid not in base:
                continue
            known = {p.number for p in bells[base[cid].school] if p.weekday == day}
            missing = [n for n in nums if n not in known]
            if missing:
                self.bad(row, "periods", f"period(s) {missing} not in the bell schedule of "
                         f"{base[cid].school!r} on weekday {day}")
                continue
            busy[cid].update((day, n) for n in nums)
        return {
            cid: Classroom(c.id, c.name, c.school, c.grades, needs.get(cid, {}), frozenset(busy.get(cid, ())))
            for cid, c in base.items()
        }

    def teachers(self, schools: dict[str, School]) -> dict[str, Teacher]:
        out: dict[str, Teacher] = {}
        for tid, row in self.unique(self.t.rows("teachers")).items():
            sid = self.school_ref(row, "school", schools, "urban")
            cap = self.get(row, "max_classrooms", lambda v: _optional_int(v, low=0))
            if sid:
                out[tid] = Teacher(tid, _text(row.values.get("name")) or tid, sid, cap)
        return out

    def class_kind(self, row: Row, classrooms: dict[str, Classroom]) -> tuple[str, tuple[str, ...]] | None:
        """A class row's lesson kind and listening classrooms; None (issues recorded) when unusable."""
        raw = _text(row.values.get("kind"))
        kind = _CLASS_KINDS.get(raw.lower())
        if kind is None:
            self.bad(row, "kind", f"{raw!r} must be 'twinning' (同步课堂) or 'broadcast' (名师课堂)")
            return None
        value = row.values.get("listeners")
        parts = value if isinstance(value, list) else re.split(r"[,;，、\s]+", _text(value))
        listeners = tuple(dict.fromkeys(_text(p) for p in parts if _text(p)))
        if listeners and kind != "broadcast":
            self.bad(row, "listeners", "only a class of kind 'broadcast' has listening classrooms")
            return None
        unknown = [c for c in listeners if c not in classrooms]
        if unknown:
            self.bad(row, "listeners", f"unknown classroom(s) {', '.join(map(repr, unknown[:5]))} (not in classrooms)")
            return None
        if len(listeners) > MAX_LISTENERS:
            self.bad(row, "listeners", f"{len(listeners)} listening classrooms; at most {MAX_LISTENERS}")
            return None
        return kind, listeners

    def classes(self, teachers: dict[str, Teacher], classrooms: dict[str, Classroom]) -> dict[str, MasterClass]:
        out: dict[str, MasterClass] = {}
        placed: dict[tuple[str, int], list[tuple[MasterClass, Row]]] = defaultdict(list)  # a teacher's day
        teacher_rows = {_text(r.values.get("id")) for r in self.t.rows("teachers")}
        for kid, row in self.unique(self.t.rows("classes")).items():
            tid = _text(row.values.get("teacher"))
            if tid and tid not in teacher_rows:
                self.bad(row, "teacher", f"unknown teacher {tid!r} (not in teachers)")
            grade = self.get(row, "grade", lambda v: parse_int(v, low=1, high=12))
            day = self.get(row, "weekday", parse_weekday)
            start = self.get(row, "start", parse_time)
            end = self.get(row, "end", parse_time)
            cap = self.get(row, "capacity", lambda v: _optional_int(v, low=1, high=MAX_CAPACITY))
            subject = _text(row.values.get("subject"))
            if start is not None and end is not None and end <= start:
                self.bad(row, "end", f"{hhmm(end)} is not after start {hhmm(start)}")
                continue
            room = _text(row.values.get("room"))
            if room and not _ID_RE.match(room):
                self.bad(row, "room", f"{room!r} must be 1-64 letters, digits, '_', '.' or '-'")
                continue
            kind = self.class_kind(row, classrooms)
            if None in (grade, day, start, end) or tid not in teachers or not subject or kind is None:
                continue
            if cap is None and _text(row.values.get("capacity")) != "":
                continue
            mc = MasterClass(kid, tid, subject, grade, day, start, end,
                             cap if cap is not None else DEFAULT_CAPACITY, _text(row.values.get("room")),
                             kind[0], kind[1])
            other = next(((q, qrow) for q, qrow in placed[(tid, day)] if q.start < end and start < q.end), None)
            if other is not None:
                q, qrow = other
                self.bad(row, "start", f"{hhmm(start)}-{hhmm(end)} on weekday {day} overlaps class {q.id} of "
                         f"the same teacher {tid!r} ({hhmm(q.start)}-{hhmm(q.end)}, row {qrow.row})")
                continue
            placed[(tid, day)].append((mc, row))
            out[kid] = mc
        return out

    def partnerships(self, schools: dict[str, School]) -> set[tuple[str, str]]:
        out: set[tuple[str, str]] = set()
        for row in self.t.rows("partnerships"):
            u = self.school_ref(row, "urban_school", schools, "urban")
            r = self.school_ref(row, "rural_school", schools, "rural")
            if u and r:
                out.add((u, r))
        return out


def build_problem(tables: Tables) -> Problem:
    """Validate every row; raise InputError listing all issues, or return the Problem."""
    b = _Builder(tables)
    b.check_columns()
    settings = b.settings()
    schools = b.schools()
    bells = b.bells(schools)
    classrooms = b.classrooms(schools, bells)
    teachers = b.teachers(schools)
    classes = b.classes(teachers, classrooms)
    partnerships = b.partnerships(schools)
    if b.issues or settings is None:
        if not b.issues:
            b.bad(tables.settings, "term_start", "settings are incomplete")
        raise InputError(_dedupe(b.issues))
    return Problem(settings, schools, bells, classrooms, teachers, classes, partnerships)


def _dedupe(issues: list[InputIssue]) -> list[InputIssue]:
    seen: set[InputIssue] = set()
    out = []
    for i in issues:
        if i not in seen:
            seen.add(i)
            out.append(i)
    return out


def load_problem(path: Path) -> Problem:
    """Read a JSON file or a directory of CSV files (see README) and validate it."""
    from scheduler import io_csv, io_json

    if path.is_dir():
        return build_problem(io_csv.read_tables(path))
    return build_problem(io_json.read_tables(path))


def read_directory(tables: Tables, known_schools: dict[str, School] | None = None
                   ) -> tuple[dict[str, School], dict[str, Classroom]]:
    """Validate a directory of schools and classrooms alone (no bells, needs or classes): the admin
    console keeps it in the database. Same files and columns as the timetable input; a classroom
    may be in an urban school (a master classroom) or a rural one, and may refer to a school that
    is already known. Raises InputError listing every issue."""
    b = _Builder(tables)
    b.check_columns()
    schools = b.schools()
    everywhere = {**(known_schools or {}), **schools}
    rows = b.unique(b.t.rows("classrooms"))
    classrooms: dict[str, Classroom] = {}
    for cid, row in rows.items():
        sid = _text(row.values.get("school"))
        if sid and sid not in everywhere:
            if not any(_text(r.values.get("id")) == sid for r in b.t.rows("schools")):
                b.bad(row, "school", f"unknown school {sid!r} (not in schools)")
            continue
        grades = b.get(row, "grades", lambda v: parse_set(v, lambda x: parse_int(x, low=1, high=12), "grade"))
        if sid and grades:
            classrooms[cid] = Classroom(cid, _text(row.values.get("name")) or cid, sid, frozenset(grades))
    if b.issues:
        raise InputError(_dedupe(b.issues))
    return schools, classrooms
