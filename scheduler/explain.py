"""Why a need is not fully met: for each classroom-subject short of periods, the cause a bureau
can act on (no class of that grade and subject, no common free time, capacity full, link full,
teacher's weekly cap, clashes), with the classes concerned and a suggestion."""

from __future__ import annotations

from collections import Counter, defaultdict
from typing import Any

from scheduler.candidates import Candidate, build_candidates
from scheduler.model import WEEKDAY_NAMES, Problem, hhmm

CAUSES: dict[str, tuple[str, str]] = {
    "no_class": ("没有该年级该学科的主讲课", "no master class of this grade and subject"),
    "no_common_time": ("主讲课时间不在本班空闲节次内", "no master class falls in a free period of the classroom"),
    "capacity_full": ("可用主讲课名额已满", "the fitting master classes are full (capacity)"),
    "link_full": ("学校网络同时承载的课已满", "a school's uplink is full at those times"),
    "teacher_cap": ("主讲教师每周远程班级数已满", "the master teacher's weekly cap on remote classrooms is reached"),
    "clash": ("本班该时间已有其他同步课", "the classroom already has another remote lesson at those times"),
    "same_day": ("同一天已排该学科", "the subject is already placed on those days"),
    "continuity": ("本学科由一位教师全周授课，该教师没有更多合适的课",
                   "one teacher all week: the classroom's teacher for this subject has no further class that fits"),
    "not_chosen": ("有可用的课但未被选中（求解时间不足）", "a fitting class is free but was not chosen (time limit)"),
}
# when several causes block, the one reported first is the one most worth changing
PRIORITY = ("capacity_full", "link_full", "teacher_cap", "clash", "same_day", "not_chosen")


def _when(day: int, start: int, end: int) -> str:
    return f"{WEEKDAY_NAMES.get(day, day)} {hhmm(start)}-{hhmm(end)}"


class _State:
    """The timetable's load: who is in which class, per school and time."""

    def __init__(self, problem: Problem, pairs: list[tuple[str, str]]) -> None:
        self.problem = problem
        self.pairs = [(c, k) for c, k in pairs if c in problem.classrooms and k in problem.classes]
        self.in_class: dict[str, set[str]] = defaultdict(set)
        self.of_room: dict[str, list[str]] = defaultdict(list)
        self.teacher_rooms: dict[str, set[str]] = defaultdict(set)
        for c, k in self.pairs:
            self.in_class[k].add(c)
            self.of_room[c].append(k)
            self.teacher_rooms[problem.classes[k].teacher].add(c)

    def rural_load(self, school: str, day: int, start: int, end: int) -> int:
        p = self.problem
        n = 0
        for c, k in self.pairs:
            mc = p.classes[k]
            if p.classrooms[c].school == school and mc.weekday == day and mc.start < end and start < mc.end:
                n += 1
        return n

    def urban_load(self, school: str, day: int, start: int, end: int) -> int:
        p = self.problem
        return sum(
            1 for k in self.in_class
            if self.in_class[k] and p.teachers[p.classes[k].teacher].school == school
            and p.classes[k].weekday == day and p.classes[k].start < end and start < p.classes[k].end
        )

    def blockers(self, cand: Candidate) -> list[str]:
        p = self.problem
        mc = p.classes[cand.cls]
        reasons = []
        if len(self.in_class[cand.cls]) >= mc.capacity:
            reasons.append("capacity_full")
        rural = p.schools[p.classrooms[cand.classroom].school]
        if rural.link_capacity is not None and rural.link_capacity <= self.rural_load(
                rural.id, mc.weekday, mc.start, mc.end):
            reasons.append("link_full")
        urban = p.teacher_school(cand.cls)
        if (urban.link_capacity is not None and not self.in_class[cand.cls]
                and urban.link_capacity <= self.urban_load(urban.id, mc.weekday, mc.start, mc.end)):
            reasons.append("link_full")
        cap = p.teachers[mc.teacher].max_classrooms
        rooms = self.teacher_rooms[mc.teacher]
        if cap is not None and cand.classroom not in rooms and len(rooms) >= cap:
            reasons.append("teacher_cap")
        own = [p.classes[k] for k in self.of_room[cand.classroom]]
        if any(o.weekday == mc.weekday and o.start < mc.end and mc.start < o.end for o in own):
            reasons.append("clash")
        same_day = sum(1 for o in own if o.subject == mc.subject and o.weekday == mc.weekday)
        if same_day >= p.day_limit(cand.classroom, mc.subject):
            reasons.append("same_day")
        return list(dict.fromkeys(reasons)) or ["not_chosen"]


def explain(problem: Problem, pairs: list[tuple[str, str]]) -> list[dict[str, Any]]:
    """One entry per classroom-subject whose need is not fully met, in classroom order."""
    state = _State(problem, pairs)
    cands_by_cs: dict[tuple[str, str], list[Candidate]] = defaultdict(list)
    for cand in build_candidates(problem):
        cands_by_cs[(cand.classroom, cand.subject)].append(cand)
    covered: Counter[tuple[str, str]] = Counter()
    teacher_of: dict[tuple[str, str], str] = {}
    for c, k in state.pairs:
        mc = problem.classes[k]
        covered[(c, mc.subject)] += 1
        teacher_of[(c, mc.subject)] = mc.teacher
    out = []
    for cid in sorted(problem.classrooms):
        room = problem.classrooms[cid]
        for subject, need in sorted(room.needs.items()):
            got = covered[(cid, subject)]
            if got >= need:
                continue
            entry = _explain_one(problem, state, cid, subject, cands_by_cs[(cid, subject)],
                                 teacher_of.get((cid, subject)))
            school = problem.schools[room.school]
            out.append({"classroom": cid, "classroom_name": room.name, "school": school.id,
                        "school_name": school.name, "county": school.county, "subject": subject,
                        "need": need, "covered": got, "missing": need - got, **entry})
    return out


def _explain_one(problem: Problem, state: _State, cid: str, subject: str, cands: list[Candidate],
                 teacher: str | None) -> dict[str, Any]:
    room = problem.classrooms[cid]
    same = [k for k in sorted(problem.classes)
            if problem.classes[k].subject == subject and problem.classes[k].grade in room.grades
            and problem.in_scope(k, cid)]
    if not same:
        grades = "/".join(str(g) for g in sorted(room.grades))
        return _entry("no_class", [], f"add a master class of {subject} for grade {grades}, "
                      "or let this classroom join a neighbouring grade")
    if not cands:
        return _entry("no_common_time", _nearest(problem, cid, same),
                      "move a master class into one of the classroom's free periods, or free a local period")
    taken = set(state.of_room[cid])
    usable = [c for c in cands if c.cls not in taken]
    if teacher is not None:
        # continuity: only this teacher's other classes can add periods
        theirs = [k for k in same if problem.classes[k].teacher == teacher and k not in taken]
        mine = [c for c in usable if c.teacher == teacher]
        if not theirs:
            return _entry("continuity", [], f"give teacher {teacher} another {subject} class at a free time "
                          "of the classroom, or move the whole subject to another teacher")
        if not mine:
            return _entry("no_common_time", _nearest(problem, cid, theirs),
                          f"move one of {teacher}'s other {subject} classes into a free period of the "
                          "classroom, or free a local period")
        usable = mine
    details = []
    counts: Counter[str] = Counter()
    for c in usable:
        reasons = state.blockers(c)
        counts.update(set(reasons))
        details.append({"class": c.cls, "teacher": c.teacher, "when": _when(c.weekday, c.start, c.end),
                        "blocked_by": reasons})
    if not usable:
        return _entry("clash", [], "the classroom already uses every fitting class")
    cause = max(PRIORITY, key=lambda r: (counts[r], -PRIORITY.index(r)))
    return _entry(cause, details, _suggest(problem, cause, usable))


def _suggest(problem: Problem, cause: str, usable: list[Candidate]) -> str:
    first = usable[0]
    if cause == "capacity_full":
        mc = problem.classes[first.cls]
        return f"raise the capacity of {mc.id} (now {mc.capacity}, at most 8) or add a class at that time"
    if cause == "link_full":
        return "raise the school's link_capacity or spread remote lessons over other periods"
    if cause == "teacher_cap":
        t = problem.teachers[first.teacher]
        return f"raise max_classrooms of {t.id} (now {t.max_classrooms}) or add another teacher"
    if cause == "clash":
        return "the classroom's other remote lessons take these times: add a class at another free time"
    if cause == "same_day":
        return "add a class of this subject on another day"
    return "solve again with a longer time limit"


def _nearest(problem: Problem, cid: str, same: list[str]) -> list[dict[str, Any]]:
    """For 'no common time': each class's closest period of the classroom's school, and why not."""
    room = problem.classrooms[cid]
    periods = problem.bells.get(room.school, [])
    out = []
    for k in same:
        mc = problem.classes[k]
        day = [p for p in periods if p.weekday == mc.weekday]
        if not day:
            out.append({"class": k, "when": _when(mc.weekday, mc.start, mc.end), "why": "no school that day"})
            continue
        p = min(day, key=lambda p: abs(p.start - mc.start) + abs(p.end - mc.end))
        off = abs(p.start - mc.start) + abs(p.end - mc.end)
        busy = (p.weekday, p.number) in room.busy
        why = "the period is taken by a local lesson" if busy else f"off by {off} min"
        out.append({"class": k, "when": _when(mc.weekday, mc.start, mc.end),
                    "nearest_period": f"{p.number} ({hhmm(p.start)}-{hhmm(p.end)})", "why": why})
    return sorted(out, key=lambda d: d["why"] != "the period is taken by a local lesson")[:5]


def _entry(cause: str, details: list[dict[str, Any]], suggestion: str) -> dict[str, Any]:
    zh, en = CAUSES[cause]
    return {"cause": cause, "reason": f"{zh} / {en}", "suggestion": suggestion, "details": details}
