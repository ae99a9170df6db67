"""Re-solving after an edit keeps every assignment that is not forced to move, and says what moved."""

from __future__ import annotations

import json
from typing import Any

from scheduler.inputs import build_problem
from scheduler.io_json import tables_from_json
from scheduler.model import Problem
from scheduler.pipeline import make_timetable
from scheduler.solver import SolveOptions
from scheduler.timetable import Timetable
from scheduler.validate import check


def county(inst: Any) -> Any:
    """Six classrooms, three English teachers with spare classes: many equally good timetables."""
    i = inst().teacher("A").teacher("B").teacher("C")
    for n in range(6):
        i.room(f"c{n}", school="R1" if n < 3 else "R2", en=2)
    for t in "ABC":
        for d in range(1, 6):
            i.cls(f"{t}{d}", t, day=d, period=1 + "ABC".index(t), capacity=2)
    return i


def solve(problem: Problem, previous: Timetable | None = None) -> Timetable:
    tt = make_timetable(problem, SolveOptions(time_limit_s=10, workers=2), previous)
    assert check(problem, tt) == []
    return tt


def test_teacher_leaves_only_their_classrooms_move(inst: Any) -> None:
    i = county(inst)
    first = solve(i.problem())
    assert first.summary["covered"] == 12
    data = json.loads(json.dumps(i.data))
    gone = first.assignments[0].teacher
    data["teachers"] = [t for t in data["teachers"] if t["id"] != gone]
    data["classes"] = [k for k in data["classes"] if k["teacher"] != gone]
    problem = build_problem(tables_from_json(data, "edited.json"))
    second = solve(problem, first)
    before, after = set(first.pairs()), set(second.pairs())
    forced = {(a.classroom, a.cls) for a in first.assignments if a.teacher == gone}
    assert before - forced <= after  # everything not forced stayed
    assert second.changes is not None
    removed = {(r["classroom"], r["class"]) for r in second.changes["removed"]}
    assert removed == forced
    assert all(f"teacher {gone}" in r["reason"] for r in second.changes["removed"])
    assert second.changes["kept"] == len(before) - len(forced)
    assert {(r["classroom"], r["class"]) for r in second.changes["added"]} == after - before
    assert second.summary["covered"] == 12  # the two others still cover everything


def test_need_reduced_moves_one_period_only(inst: Any) -> None:
    i = county(inst)
    first = solve(i.problem())
    i.data["classrooms"][0]["needs"]["英语"] = 1
    second = solve(i.problem(), first)
    assert second.changes is not None
    assert len(second.changes["removed"]) == 1 and second.changes["added"] == []
    assert "need for 英语 went down to 1" in second.changes["removed"][0]["reason"]
    assert set(second.pairs()) < set(first.pairs())


def test_need_increased_keeps_everything(inst: Any) -> None:
    i = county(inst)
    first = solve(i.problem())
    i.data["classrooms"][3]["needs"]["英语"] = 3
    second = solve(i.problem(), first)
    assert second.changes is not None
    assert second.changes["removed"] == []
    assert set(first.pairs()) <= set(second.pairs())
    assert second.summary["covered"] == 13


def test_without_previous_a_fresh_solve_is_free_to_differ(inst: Any) -> None:
    i = county(inst)
    tt = solve(i.problem())
    assert tt.changes is None


def test_a_kept_class_at_a_new_time_is_reported_as_moved(inst: Any) -> None:
    i = county(inst)
    first = solve(i.problem())
    k = first.assignments[0].cls
    rooms = sorted(a.classroom for a in first.assignments if a.cls == k)
    spec = next(c for c in i.data["classes"] if c["id"] == k)
    was = f"{['Mon', 'Tue', 'Wed', 'Thu', 'Fri'][spec['weekday'] - 1]} {spec['start']}-{spec['end']}"
    spec.update(start="10:50", end="11:30")  # period 4, free for every classroom
    second = solve(i.problem(), first)
    assert set(second.pairs()) == set(first.pairs())  # nothing needs to change its class
    ch = second.changes
    assert ch is not None and ch["removed"] == [] and ch["added"] == []
    assert [(m["classroom"], m["class"]) for m in ch["moved"]] == [(r, k) for r in rooms]
    assert all(m["to"].endswith("10:50-11:30 (period 4)") and m["from"].startswith(was) for m in ch["moved"])
    assert all(f"class {k} moved from {was}" in m["reason"] for m in ch["moved"])
    assert ch["kept"] == len(first.assignments) - len(rooms)


def test_keep_stage_without_a_solution_still_keeps_what_fits(inst: Any, monkeypatch: Any) -> None:
    from scheduler import solver

    i = county(inst)
    first = solve(i.problem())
    real_run = solver._Part._run

    def run(self: Any, name: str, *args: Any, **kwargs: Any) -> Any:
        return None if name == "keep" else real_run(self, name, *args, **kwargs)

    monkeypatch.setattr(solver._Part, "_run", run)  # as if the keep stage timed out with nothing
    gone = first.assignments[0].teacher
    data = json.loads(json.dumps(i.data))
    data["teachers"] = [t for t in data["teachers"] if t["id"] != gone]
    data["classes"] = [k for k in data["classes"] if k["teacher"] != gone]
    second = solve(build_problem(tables_from_json(data, "edited.json")), first)
    forced = {(a.classroom, a.cls) for a in first.assignments if a.teacher == gone}
    assert set(first.pairs()) - forced <= set(second.pairs())
    assert second.changes is not None and second.changes["kept"] == len(first.assignments) - len(forced)
    keep = next(s for s in second.summary["stages"] if s["name"] == "keep")
    assert keep["value"] == len(first.assignments) - len(forced) and keep["optimal"] is False
    assert second.summary["covered"] == 12
