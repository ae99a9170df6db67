"""An independent checker: re-reads the input and re-checks every rule on a timetable.

It shares no code with the solver's model (only the input data classes), so a bug in one is
caught by the other. Each violation has a kind, a message and the ids it concerns.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from scheduler.model import WEEKDAY_NAMES, Problem, hhmm
from scheduler.timetable import Timetable

KINDS = (
    "unknown_classroom", "unknown_class", "duplicate", "grade_mismatch", "subject_not_needed",
    "mismatch", "not_free", "over_need", "double_booked", "same_day", "continuity", "capacity",
    "teacher_cap", "rural_link", "urban_link", "out_of_scope",
)  # fmt: skip


@dataclass(frozen=True)
class Violation:
    kind: str
    message: str
    refs: tuple[str, ...] = ()

    def __str__(self) -> str:
        return f"[{self.kind}] {self.message}"

    def to_json(self) -> dict[str, object]:
        return {"kind": self.kind, "message": self.message, "refs": list(self.refs)}


def _when(day: int, start: int, end: int) -> str:
    return f"{WEEKDAY_NAMES.get(day, day)} {hhmm(start)}-{hhmm(end)}"


def check(problem: Problem, tt: Timetable) -> list[Violation]:
    out: list[Violation] = []
    tol = problem.settings.tolerance_min
    valid: list[tuple[str, str, int]] = []  # (classroom, class, period) that refer to known things
    seen: set[tuple[str, str]] = set()
    for a in tt.assignments:
        room = problem.classrooms.get(a.classroom)
        mc = problem.classes.get(a.cls)
        if room is None:
            out.append(Violation("unknown_classroom", f"classroom {a.classroom!r} is not in the input",
                                 (a.classroom,)))
            continue
        if mc is None:
            out.append(Violation("unknown_class", f"{a.classroom}: class {a.cls!r} is not in the input",
                                 (a.classroom, a.cls)))
            continue
        if (a.classroom, a.cls) in seen:
            out.append(Violation("duplicate", f"{a.classroom} joins {a.cls} twice", (a.classroom, a.cls)))
            continue
        seen.add((a.classroom, a.cls))
        if mc.grade not in room.grades:
            out.append(Violation("grade_mismatch", f"{a.classroom} (grades {sorted(room.grades)}) joins "
                                 f"{a.cls} of grade {mc.grade}", (a.classroom, a.cls)))
        if room.needs.get(mc.subject, 0) <= 0:
            out.append(Violation("subject_not_needed", f"{a.classroom} has no need for {mc.subject} "
                                 f"({a.cls})", (a.classroom, a.cls)))
        urban_county = problem.schools[problem.teachers[mc.teacher].school].county
        if problem.settings.match_scope == "county" and urban_county != problem.schools[room.school].county:
            out.append(Violation("out_of_scope", f"{a.classroom} joins {a.cls} of another county "
                                 f"({urban_county}); match_scope is county", (a.classroom, a.cls)))
        shown = (a.teacher, a.subject, a.weekday, a.start, a.end)
        truth = (mc.teacher, mc.subject, mc.weekday, hhmm(mc.start), hhmm(mc.end))
        if shown != truth:
            out.append(Violation("mismatch", f"{a.classroom}/{a.cls}: timetable says {shown}, input says "
                                 f"{truth}", (a.classroom, a.cls)))
        fits = [
            p for p in problem.bells.get(room.school, [])
            if p.weekday == mc.weekday and p.start - tol <= mc.start and mc.end <= p.end + tol
        ]
        free = [p for p in fits if (p.weekday, p.number) not in room.busy]
        if not free:
            why = "falls in a period taken by a local lesson" if fits else "falls in no period of the bell schedule"
            out.append(Violation("not_free", f"{a.classroom}: {a.cls} at {_when(mc.weekday, mc.start, mc.end)} "
                                 f"{why} (tolerance {tol} min)", (a.classroom, a.cls)))
            period = a.period
        else:
            period = a.period if any(p.number == a.period for p in free) else free[0].number
            if not any(p.number == a.period for p in free):
                out.append(Violation("mismatch", f"{a.classroom}/{a.cls}: period {a.period} given, the class "
                                     f"falls in period {period}", (a.classroom, a.cls)))
        valid.append((a.classroom, a.cls, period))
    out += _per_classroom(problem, valid)
    out += _per_class_and_teacher(problem, valid)
    out += _links(problem, valid)
    return out


def _per_classroom(problem: Problem, valid: list[tuple[str, str, int]]) -> list[Violation]:
    out: list[Violation] = []
    by_room: dict[str, list[tuple[str, int]]] = defaultdict(list)
    for cid, k, period in valid:
        by_room[cid].append((k, period))
    for cid, items in sorted(by_room.items()):
        room = problem.classrooms[cid]
        days = len({p.weekday for p in problem.bells.get(room.school, [])}) or 5
        per_subject: dict[str, list[str]] = defaultdict(list)
        for k, _ in items:
            per_subject[problem.classes[k].subject].append(k)
        for subject, ks in sorted(per_subject.items()):
            need = room.needs.get(subject, 0)
            if need > 0 and len(ks) > need:
                out.append(Violation("over_need", f"{cid}: {len(ks)} periods of {subject}, needs {need}",
                                     (cid, *ks)))
            teachers = sorted({problem.classes[k].teacher for k in ks})
            if len(teachers) > 1:
                out.append(Violation("continuity", f"{cid}: {subject} is taught by {len(teachers)} teachers "
                                     f"({', '.join(teachers)}); one teacher all week", (cid, *teachers)))
            limit = max(1, -(-need // days))
            per_day: dict[int, list[str]] = defaultdict(list)
            for k in ks:
                per_day[problem.classes[k].weekday].append(k)
            for day, dks in sorted(per_day.items()):
                if len(dks) > limit:
                    out.append(Violation("same_day", f"{cid}: {subject} {len(dks)} times on "
                                         f"{WEEKDAY_NAMES.get(day, day)} (at most {limit})", (cid, *dks)))
        for n, (k1, p1) in enumerate(items):
            a = problem.classes[k1]
            for k2, p2 in items[n + 1:]:
                b = problem.classes[k2]
                if a.weekday == b.weekday and (p1 == p2 or (a.start < b.end and b.start < a.end)):
                    out.append(Violation("double_booked", f"{cid}: {k1} and {k2} at the same time "
                                         f"({_when(a.weekday, a.start, a.end)} / {_when(b.weekday, b.start, b.end)})",
                                         (cid, k1, k2)))
    return out


def _per_class_and_teacher(problem: Problem, valid: list[tuple[str, str, int]]) -> list[Violation]:
    out: list[Violation] = []
    by_class: dict[str, list[str]] = defaultdict(list)
    rooms_of_teacher: dict[str, set[str]] = defaultdict(set)
    for cid, k, _ in valid:
        by_class[k].append(cid)
        rooms_of_teacher[problem.classes[k].teacher].add(cid)
    for k, rooms in sorted(by_class.items()):
        cap = problem.classes[k].capacity
        if len(rooms) > cap:
            out.append(Violation("capacity", f"{k}: {len(rooms)} rural classrooms, capacity {cap}", (k, *rooms)))
    for t, trooms in sorted(rooms_of_teacher.items()):
        tcap = problem.teachers[t].max_classrooms
        if tcap is not None and len(trooms) > tcap:
            out.append(Violation("teacher_cap", f"{t}: {len(trooms)} remote classrooms a week, cap {tcap}",
                                 (t, *sorted(trooms))))
    return out


def _links(problem: Problem, valid: list[tuple[str, str, int]]) -> list[Violation]:
    out: list[Violation] = []
    # rural: each classroom in a remote lesson is one stream on its school's uplink
    events: dict[tuple[str, int], list[tuple[int, int, str]]] = defaultdict(list)
    for cid, k, _ in valid:
        mc = problem.classes[k]
        events[(problem.classrooms[cid].school, mc.weekday)].append((mc.start, mc.end, f"{cid}/{k}"))
    # urban: each master class with at least one rural classroom is one lesson on the uplink
    used = sorted({k for _, k, _ in valid})
    for k in used:
        mc = problem.classes[k]
        events[(problem.teachers[mc.teacher].school, mc.weekday)].append((mc.start, mc.end, k))
    for (sid, day), evs in sorted(events.items()):
        link = problem.schools[sid].link_capacity
        if link is None:
            continue
        reported: set[frozenset[str]] = set()
        for s, _, _ in sorted(evs):
            active = frozenset(name for a, b, name in evs if a <= s < b)
            if len(active) > link and active not in reported:
                reported.add(active)
                kind = "rural_link" if problem.schools[sid].kind == "rural" else "urban_link"
                out.append(Violation(kind, f"{sid}: {len(active)} remote lessons at once on "
                                     f"{WEEKDAY_NAMES.get(day, day)} {hhmm(s)}, link carries {link}",
                                     (sid, *sorted(active))))
    return out
