"""The solved timetable: assignments of rural classrooms to master classes, with a summary,
unmet needs and a directory of names, so exports and `apply` need nothing else."""

from __future__ import annotations

import hashlib
import json
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from scheduler.errors import TimetableError
from scheduler.model import Problem, hhmm

FORMAT = "twinclass-timetable/1"


@dataclass(frozen=True)
class Assignment:
    classroom: str
    cls: str
    teacher: str
    subject: str
    grade: int
    weekday: int
    start: str
    end: str
    period: int
    partner: bool = False

    def to_json(self) -> dict[str, Any]:
        return {"classroom": self.classroom, "class": self.cls, "teacher": self.teacher,
                "subject": self.subject, "grade": self.grade, "weekday": self.weekday,
                "start": self.start, "end": self.end, "period": self.period, "partner": self.partner}

    @classmethod
    def from_json(cls, d: Any, where: str) -> Assignment:
        if not isinstance(d, dict):
            raise TimetableError(f"{where}: must be an object")
        try:
            return cls(str(d["classroom"]), str(d["class"]), str(d.get("teacher", "")),
                       str(d.get("subject", "")), int(d.get("grade", 0)), int(d.get("weekday", 0)),
                       str(d.get("start", "")), str(d.get("end", "")), int(d.get("period", 0)),
                       bool(d.get("partner", False)))
        except KeyError as exc:
            raise TimetableError(f"{where}: field {exc.args[0]!r} is missing") from exc
        except (TypeError, ValueError) as exc:
            raise TimetableError(f"{where}: {exc}") from exc


@dataclass
class Timetable:
    id: str
    assignments: list[Assignment]
    summary: dict[str, Any] = field(default_factory=dict)
    unmet: list[dict[str, Any]] = field(default_factory=list)
    changes: dict[str, Any] | None = None
    directory: dict[str, Any] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)
    input_digest: str = ""
    created_at: str = ""

    def pairs(self) -> list[tuple[str, str]]:
        return [(a.classroom, a.cls) for a in self.assignments]

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "format": FORMAT, "id": self.id, "created_at": self.created_at,
            "input_digest": self.input_digest, "settings": self.settings, "summary": self.summary,
            "assignments": [a.to_json() for a in self.assignments], "unmet": self.unmet,
        }
        if self.changes is not None:
            out["changes"] = self.changes
        out["directory"] = self.directory
        return out

    @classmethod
    def from_json(cls, data: Any) -> Timetable:
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise TimetableError(f"not a timetable (expected \"format\": \"{FORMAT}\")")
        raw = data.get("assignments")
        if not isinstance(raw, list):
            raise TimetableError("assignments: must be a list")
        return cls(
            id=str(data.get("id", "")),
            assignments=[Assignment.from_json(a, f"assignments[{n}]") for n, a in enumerate(raw)],
            summary=dict(data.get("summary") or {}), unmet=list(data.get("unmet") or []),
            changes=data.get("changes"), directory=dict(data.get("directory") or {}),
            settings=dict(data.get("settings") or {}), input_digest=str(data.get("input_digest", "")),
            created_at=str(data.get("created_at", "")),
        )


def read_timetable(path: Path) -> Timetable:
    try:
        return Timetable.from_json(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, json.JSONDecodeError) as exc:
        raise TimetableError(f"{path}: {exc}") from exc


INPUT_SUFFIX = ".input.json"  # `<id>.input.json`: the input a stored timetable was solved from


def timetable_store(data_dir: Path) -> Path:
    """Where `solve --data-dir` and the HTTP API keep timetables: `DATA_DIR/timetables/`."""
    return data_dir / "timetables"


def stored_timetables(store: Path) -> list[Path]:
    """The timetable files in a store (not the `<id>.input.json` inputs kept beside them), by name."""
    return sorted(p for p in store.glob("*.json") if not p.name.endswith(INPUT_SUFFIX))


def newest_timetable(store: Path) -> Path | None:
    """The most recently written timetable file in a store, or None."""
    return max(stored_timetables(store), key=lambda p: (p.stat().st_mtime, p.name), default=None)


def new_id() -> str:
    return f"tt-{datetime.now(UTC):%Y%m%d}-{secrets.token_hex(3)}"


def problem_digest(problem: Problem) -> str:
    text = repr((problem.settings, sorted(problem.schools.items()), sorted(problem.bells.items()),
                 sorted((k, v, sorted(v.needs.items())) for k, v in problem.classrooms.items()),
                 sorted(problem.teachers.items()), sorted(problem.classes.items()),
                 sorted(problem.partnerships)))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def assignment_for(problem: Problem, classroom: str, class_id: str, period: int) -> Assignment:
    mc = problem.classes[class_id]
    return Assignment(classroom, class_id, mc.teacher, mc.subject, mc.grade, mc.weekday, hhmm(mc.start),
                      hhmm(mc.end), period, problem.is_partner(class_id, classroom))


def directory(problem: Problem) -> dict[str, Any]:
    """Names and times that exports, HTML pages and `apply` show, keyed by id."""
    schools = {s.id: {"name": s.name, "county": s.county, "kind": s.kind} for s in problem.schools.values()}
    return {
        "schools": schools,
        "classrooms": {
            c.id: {"name": c.name, "school": c.school, "school_name": schools[c.school]["name"],
                   "county": schools[c.school]["county"], "grades": sorted(c.grades),
                   "needs": dict(c.needs), "busy": sorted([d, p] for d, p in c.busy)}
            for c in problem.classrooms.values()
        },
        "teachers": {
            t.id: {"name": t.name, "school": t.school, "school_name": schools[t.school]["name"],
                   "county": schools[t.school]["county"]}
            for t in problem.teachers.values()
        },
        "classes": {
            k.id: {"teacher": k.teacher, "subject": k.subject, "grade": k.grade, "weekday": k.weekday,
                   "start": hhmm(k.start), "end": hhmm(k.end), "capacity": k.capacity, "room": k.master_room,
                   "kind": k.kind, "listeners": list(k.listeners)}
            for k in problem.classes.values()
        },
        "bells": {
            sid: [[p.weekday, p.number, hhmm(p.start), hhmm(p.end)] for p in periods]
            for sid, periods in problem.bells.items() if problem.schools[sid].kind == "rural"
        },
    }


def settings_json(problem: Problem) -> dict[str, Any]:
    s = problem.settings
    return {"term_start": s.term_start.isoformat(), "term_end": s.term_end.isoformat(),
            "tolerance_min": s.tolerance_min, "timezone": s.timezone,
            "holidays": [d.isoformat() for d in s.holidays], "match_scope": s.match_scope}
