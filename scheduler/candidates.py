"""Which master classes each rural classroom could join: grade, subject and free-time matches.

Only these (classroom, class) pairs become variables, which keeps province-scale models small.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from scheduler.model import Period, Problem, deviation, fit_period


@dataclass(frozen=True)
class Candidate:
    classroom: str
    cls: str
    subject: str
    teacher: str
    weekday: int
    start: int
    end: int
    period: int  # the rural school's period number the class falls in
    deviation: int  # minutes the class is off the period's start plus end
    partner: bool


def classes_by_subject_grade(problem: Problem) -> dict[tuple[str, int], list[str]]:
    index: dict[tuple[str, int], list[str]] = defaultdict(list)
    for k in sorted(problem.classes):
        c = problem.classes[k]
        index[(c.subject, c.grade)].append(k)
    return index


def build_candidates(problem: Problem) -> list[Candidate]:
    index = classes_by_subject_grade(problem)
    tol = problem.settings.tolerance_min
    county_scope = problem.settings.match_scope == "county"
    class_county = {k: problem.teacher_school(k).county for k in problem.classes}
    out: list[Candidate] = []
    for cid in sorted(problem.classrooms):
        room = problem.classrooms[cid]
        free = problem.free_periods(cid)
        by_day: dict[int, list[Period]] = defaultdict(list)
        for p in free:
            by_day[p.weekday].append(p)
        county = problem.schools[room.school].county
        for subject in sorted(room.needs):
            if room.needs[subject] <= 0:
                continue
            for grade in sorted(room.grades):
                for k in index.get((subject, grade), []):
                    mc = problem.classes[k]
                    if county_scope and class_county[k] != county:
                        continue
                    period = fit_period(mc.start, mc.end, by_day.get(mc.weekday, []), mc.weekday, tol)
                    if period is None:
                        continue
                    out.append(Candidate(cid, k, subject, mc.teacher, mc.weekday, mc.start, mc.end,
                                         period.number, deviation(mc.start, mc.end, period),
                                         (problem.teachers[mc.teacher].school, room.school) in problem.partnerships))
    return out


def alignment_score(cand: Candidate, tolerance: int) -> int:
    """0..10, 10 for a class exactly on the period's bell times."""
    if tolerance <= 0:
        return 10
    return max(0, round(10 * (1 - cand.deviation / (2 * tolerance))))
