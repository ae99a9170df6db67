"""Every unmet need gets the right cause."""

from __future__ import annotations

from typing import Any

from scheduler.explain import explain
from scheduler.pipeline import make_timetable
from scheduler.solver import SolveOptions


def causes(i: Any) -> dict[tuple[str, str], str]:
    problem = i.problem()
    tt = make_timetable(problem, SolveOptions(time_limit_s=10, workers=2))
    assert explain(problem, tt.pairs()) == tt.unmet
    return {(u["classroom"], u["subject"]): u["cause"] for u in tt.unmet}


def test_no_class_of_that_grade_and_subject(inst: Any) -> None:
    i = inst().room("c", grades="2", mu=1).teacher("T").cls("k", "T", subject="mu", grade=3)
    assert causes(i) == {("c", "音乐"): "no_class"}


def test_no_common_free_time(inst: Any) -> None:
    i = inst().room("c", en=1).teacher("T").cls("k", "T", day=2, period=3).busy("c", 2, "3")
    i.cls("k2", "T", day=3, start="12:00", end="12:40")
    problem = i.problem()
    (u,) = explain(problem, [])
    assert u["cause"] == "no_common_time"
    assert {d["class"] for d in u["details"]} == {"k", "k2"}
    assert u["details"][0]["why"] == "the period is taken by a local lesson"


def test_capacity_full(inst: Any) -> None:
    i = inst().room("a", en=1).room("b", en=1).teacher("T").cls("k", "T", capacity=1)
    got = causes(i)
    assert list(got.values()) == ["capacity_full"]


def test_link_full(inst: Any) -> None:
    i = inst().room("a", en=1).room("b", mu=1).teacher("T").teacher("M").link("R1", 1)
    i.cls("k", "T").cls("m", "M", subject="mu")
    assert list(causes(i).values()) == ["link_full"]


def test_urban_link_full(inst: Any) -> None:
    # U carries one lesson at once; a (grade 3, for c3) and b (grade 4, for c4) are at the same time
    i = inst().room("c3", en=1).room("c4", grades="4", en=1, school="R2").link("U", 1)
    i.teacher("A").teacher("B").cls("a", "A", day=1).cls("b", "B", grade=4, day=1)
    got = causes(i)
    assert list(got.values()) == ["link_full"]
    problem = i.problem()
    (u,) = explain(problem, [("c3", "a")])
    assert u["classroom"] == "c4" and u["details"] == [
        {"class": "b", "teacher": "B", "when": "Mon 08:00-08:40", "blocked_by": ["link_full"]}]
    assert "link_capacity" in u["suggestion"]


def test_same_day(inst: Any) -> None:
    # the classroom's English teacher has a second class, but on the day English already is
    i = inst().room("c", en=2).teacher("T").cls("t1", "T", day=1, period=1).cls("t2", "T", day=1, period=3)
    assert causes(i) == {("c", "英语"): "same_day"}
    (u,) = explain(i.problem(), [("c", "t1")])
    assert u["details"] == [{"class": "t2", "teacher": "T", "when": "Mon 10:00-10:40", "blocked_by": ["same_day"]}]
    assert "another day" in u["suggestion"]


def test_not_chosen_when_a_fitting_class_is_free(inst: Any) -> None:
    # a timetable that leaves a free, fitting class unused (as a solve cut short might)
    i = inst().room("c", en=1).teacher("T").cls("k", "T", day=2)
    (u,) = explain(i.problem(), [])
    assert u["cause"] == "not_chosen" and u["details"][0]["blocked_by"] == ["not_chosen"]
    assert "longer time limit" in u["suggestion"]


def test_teacher_cap(inst: Any) -> None:
    i = inst().room("a", en=1).room("b", en=1, school="R2").teacher("T", cap=1).cls("k", "T")
    assert list(causes(i).values()) == ["teacher_cap"]


def test_clash_with_another_remote_lesson(inst: Any) -> None:
    i = inst().room("a", en=1, mu=1).teacher("T").teacher("M").cls("k", "T").cls("m", "M", subject="mu")
    assert list(causes(i).values()) == ["clash"]


def test_continuity_when_the_teacher_has_nothing_more(inst: Any) -> None:
    i = inst().room("a", en=2).teacher("T").teacher("U").cls("t1", "T", day=1).cls("t2", "T", day=2)
    i.cls("u1", "U", day=3)
    i.data["classrooms"][0]["needs"]["英语"] = 3
    got = causes(i)
    assert got == {("a", "英语"): "continuity"}


def test_reasons_are_bilingual_with_a_suggestion(inst: Any) -> None:
    i = inst().room("a", en=1).room("b", en=1).teacher("T").cls("k", "T", capacity=1)
    problem = i.problem()
    (u,) = explain(problem, [("a", "k")])
    assert u["classroom"] == "b" and u["missing"] == 1
    assert "名额已满" in u["reason"] and "capacity" in u["reason"]
    assert "raise the capacity of k" in u["suggestion"]
