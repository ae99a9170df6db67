"""Minimal change: re-solving after an edit keeps every earlier assignment that is not forced to
move (the solver's first stage maximises the kept ones), and says what moved and why."""

from __future__ import annotations

from collections import Counter
from typing import Any

from scheduler.candidates import Candidate
from scheduler.model import WEEKDAY_NAMES, Problem, hhmm
from scheduler.timetable import Timetable


def why_removed(problem: Problem, previous: Timetable, classroom: str, cls: str,
                cands: dict[tuple[str, str], Candidate]) -> str:
    """The reason an earlier assignment could not stay."""
    if classroom not in problem.classrooms:
        return f"classroom {classroom} is no longer in the input"
    if cls not in problem.classes:
        old = next((a for a in previous.assignments if a.cls == cls), None)
        if old is not None and old.teacher not in problem.teachers:
            return f"teacher {old.teacher} is no longer in the input (class {cls} is gone)"
        return f"class {cls} is no longer in the input"
    mc = problem.classes[cls]
    room = problem.classrooms[classroom]
    if room.needs.get(mc.subject, 0) <= 0:
        return f"{classroom} no longer needs {mc.subject}"
    if mc.grade not in room.grades:
        return f"grade {mc.grade} of {cls} no longer matches {classroom}"
    if (classroom, cls) not in cands:
        return f"{cls} no longer falls in a free period of {classroom}"
    before = Counter(problem.classes[a.cls].subject for a in previous.assignments
                     if a.classroom == classroom and a.cls in problem.classes)
    if before[mc.subject] > room.needs[mc.subject]:
        return f"the need for {mc.subject} went down to {room.needs[mc.subject]}"
    in_class = sum(1 for a in previous.assignments if a.cls == cls)
    if in_class > mc.capacity:
        return f"the capacity of {cls} went down to {mc.capacity}"
    teacher = problem.teachers[mc.teacher]
    rooms = {a.classroom for a in previous.assignments if a.teacher == mc.teacher}
    if teacher.max_classrooms is not None and len(rooms) > teacher.max_classrooms:
        return f"the weekly cap of {teacher.id} went down to {teacher.max_classrooms}"
    return "displaced by a changed limit (continuity, a link, or another moved lesson)"


def _when(weekday: int, start: str, end: str, period: int) -> str:
    return f"{WEEKDAY_NAMES.get(weekday, weekday)} {start}-{end} (period {period})"


def changes(problem: Problem, previous: Timetable, new_pairs: list[tuple[str, str]],
            cands: list[Candidate]) -> dict[str, Any]:
    """What moved between the previous timetable and the new pairs.

    `removed`: earlier pairs not kept, with the reason; `added`: new pairs; `moved`: pairs kept
    whose class now meets at another day or time, in another period or with another teacher (the
    input changed), so the classroom's week changes although the pair stays; `kept`: pairs that
    stayed exactly as they were.
    """
    by_pair = {(c.classroom, c.cls): c for c in cands}
    before = {(a.classroom, a.cls): a for a in previous.assignments}
    old = set(before)
    new = set(new_pairs)
    removed = [
        {"classroom": c, "class": k, "reason": why_removed(problem, previous, c, k, by_pair)}
        for c, k in sorted(old - new)
    ]
    added = [{"classroom": c, "class": k} for c, k in sorted(new - old)]
    moved = []
    for c, k in sorted(old & new):
        a, cand = before[(c, k)], by_pair.get((c, k))
        if cand is None:
            continue
        was = (a.teacher, a.weekday, a.start, a.end, a.period)
        now = (cand.teacher, cand.weekday, hhmm(cand.start), hhmm(cand.end), cand.period)
        if was == now:
            continue
        reason = (f"class {k} moved from {_when(*was[1:])} to {_when(*now[1:])}" if was[1:] != now[1:]
                  else f"class {k} changed teacher from {a.teacher} to {cand.teacher}")
        moved.append({"classroom": c, "class": k, "from": _when(*was[1:]), "to": _when(*now[1:]),
                      "teacher_from": a.teacher, "teacher_to": cand.teacher, "reason": reason})
    return {"previous": previous.id, "kept": len(old & new) - len(moved), "moved": moved, "removed": removed,
            "added": added}
