"""The independent validator catches each kind of violation in a broken timetable."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from scheduler.model import Problem
from scheduler.timetable import Assignment, Timetable, assignment_for
from scheduler.validate import KINDS, check


def timetable(problem: Problem, pairs: list[tuple[str, str]]) -> Timetable:
    out = []
    for cid, k in pairs:
        if cid in problem.classrooms and k in problem.classes:
            mc = problem.classes[k]
            bells = problem.bells[problem.classrooms[cid].school]
            p = next((p for p in bells if p.weekday == mc.weekday and p.start <= mc.start < p.end), bells[0])
            out.append(assignment_for(problem, cid, k, p.number))
        else:
            out.append(Assignment(cid, k, "", "", 0, 1, "08:00", "08:40", 1))
    return Timetable("broken", out)


def kinds(problem: Problem, tt: Timetable) -> set[str]:
    return {v.kind for v in check(problem, tt)}


@pytest.fixture
def base(inst: Any) -> Any:
    i = inst().room("c1", en=2, mu=1).room("c2", en=1).room("c3", school="R2", en=1).room("c12", grades="1", mu=1)
    i.teacher("A", cap=1).teacher("B").teacher("M")
    i.cls("a1", "A", day=1, period=1, capacity=1).cls("a2", "A", day=1, period=3).cls("a3", "A", day=2)
    i.cls("b1", "B", day=1, period=1).cls("b2", "B", day=3).cls("b3", "B", day=4)
    i.cls("m1", "M", subject="mu", day=1, period=1).cls("m5", "M", subject="mu", day=5, period=4)
    i.busy("c1", 5, "4")
    return i


CASES = {
    "unknown_classroom": [("nobody", "a1")],
    "unknown_class": [("c1", "zz")],
    "duplicate": [("c1", "b2"), ("c1", "b2")],
    "grade_mismatch": [("c12", "a1")],
    "subject_not_needed": [("c2", "m5")],
    "not_free": [("c1", "m5")],
    "over_need": [("c2", "b2"), ("c2", "b3")],
    "double_booked": [("c1", "b1"), ("c1", "m1")],
    "same_day": [("c1", "a1"), ("c1", "a2")],
    "continuity": [("c1", "a3"), ("c1", "b2")],
    "capacity": [("c1", "a1"), ("c2", "a1")],
    "teacher_cap": [("c1", "a3"), ("c2", "a2")],
    "rural_link": [("c1", "b1"), ("c2", "a1")],
    "urban_link": [("c1", "b1"), ("c3", "m1")],
}


@pytest.mark.parametrize("kind", sorted(CASES))
def test_each_violation_kind_is_caught(base: Any, kind: str) -> None:
    if kind == "rural_link":
        base.link("R1", 1)
    if kind == "urban_link":
        base.link("U", 1)
        base.data["classrooms"][2]["needs"]["音乐"] = 1
        base.data["classrooms"][2]["grades"] = "3"
    problem = base.problem()
    assert kind in kinds(problem, timetable(problem, CASES[kind]))


def test_every_kind_has_a_case() -> None:
    assert set(CASES) | {"mismatch", "out_of_scope"} == set(KINDS)


def test_mismatch_and_out_of_scope(base: Any) -> None:
    base.data["settings"]["match_scope"] = "county"
    base.data["schools"][2]["county"] = "B县"
    problem = base.problem()
    tt = timetable(problem, [("c3", "b2")])
    assert kinds(problem, tt) == {"out_of_scope"}
    tt.assignments[0] = replace(tt.assignments[0], start="09:00")
    assert kinds(problem, tt) == {"out_of_scope", "mismatch"}


def test_valid_timetable_has_no_violation(base: Any) -> None:
    problem = base.problem()
    tt = timetable(problem, [("c1", "b2"), ("c1", "b3"), ("c1", "m1"), ("c2", "a1"), ("c3", "b2")])
    assert check(problem, tt) == []


def test_messages_name_what_is_wrong(base: Any) -> None:
    problem = base.problem()
    found = check(problem, timetable(problem, [("c1", "a1"), ("c2", "a1")]))
    assert sorted(v.kind for v in found) == ["capacity", "teacher_cap"]
    (v,) = [v for v in found if v.kind == "capacity"]
    assert "a1" in v.message and "capacity 1" in v.message and v.refs == ("a1", "c1", "c2")
