"""From a problem to a finished timetable: solve, then summarise, explain and (on re-solve) diff."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime
from typing import Any

from scheduler.explain import explain
from scheduler.minimal import changes
from scheduler.model import Problem
from scheduler.solver import SolveOptions, SolveResult, fairness_value, solve
from scheduler.timetable import Timetable, assignment_for, directory, new_id, problem_digest, settings_json


def make_timetable(problem: Problem, options: SolveOptions | None = None,
                   previous: Timetable | None = None, tt_id: str | None = None) -> Timetable:
    options = options or SolveOptions()
    if previous is not None:
        options.keep = previous.pairs()
    result = solve(problem, options)
    cands = result.structure.cands
    assignments = sorted(
        (assignment_for(problem, cands[i].classroom, cands[i].cls, cands[i].period) for i in result.chosen),
        key=lambda a: (a.classroom, a.weekday, a.start),
    )
    pairs = [(a.classroom, a.cls) for a in assignments]
    tt = Timetable(
        id=tt_id or new_id(), assignments=assignments, summary=summarise(problem, result),
        unmet=explain(problem, pairs), directory=directory(problem), settings=settings_json(problem),
        input_digest=problem_digest(problem), created_at=datetime.now(UTC).isoformat(timespec="seconds"),
    )
    if previous is not None:
        tt.changes = changes(problem, previous, pairs, cands)
    return tt


def summarise(problem: Problem, result: SolveResult) -> dict[str, Any]:
    st = result.structure
    per_room: dict[str, int] = defaultdict(int)
    for i in result.chosen:
        per_room[st.cands[i].classroom] += 1
    ratios = {cid: per_room[cid] / sum(c.needs.values())
              for cid, c in problem.classrooms.items() if sum(c.needs.values()) > 0}
    lowest = min(ratios.items(), key=lambda kv: (kv[1], kv[0])) if ratios else ("", 1.0)
    need = problem.total_need
    cov_stage = next((s for s in result.stages if s.name == "coverage"), None)
    teachers_per_room = defaultdict(set)
    for i in result.chosen:
        teachers_per_room[st.cands[i].classroom].add(st.cands[i].teacher)
    return {
        "need": need,
        "covered": result.covered,
        "coverage": round(result.covered / need, 4) if need else 1.0,
        "coverage_bound": cov_stage.bound if cov_stage else result.covered,
        "coverage_optimal": bool(cov_stage and cov_stage.optimal),
        "lowest_ratio": round(lowest[1], 4),
        "lowest_ratio_classroom": lowest[0],
        "fairness_per_mille": fairness_value(st, result.chosen),
        "partner_periods": sum(1 for i in result.chosen if st.cands[i].partner),
        "distinct_teachers": sum(len(v) for v in teachers_per_room.values()),
        "classrooms": len(problem.classrooms),
        "master_classes": len(problem.classes),
        "candidate_pairs": len(st.cands),
        "stages": [s.to_json() for s in result.stages],
        "wall_s": round(result.wall_s, 3),
    }
