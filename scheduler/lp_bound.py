"""The LP relaxation of the coverage model (GLOP): an upper bound on covered periods."""

from __future__ import annotations

from collections import defaultdict

from ortools.linear_solver import pywraplp

from scheduler.structure import Structure


def lp_upper_bound(st: Structure) -> float:
    """Maximise covered periods with every 0/1 variable relaxed to [0, 1]."""
    return lp_relaxation(st)[0]


def lp_relaxation(st: Structure, *, tight: bool = False) -> tuple[float, list[float]]:
    """The LP optimum and the value of each candidate's x in it.

    `tight` adds the valid inequalities x <= used(class) for urban links (the model itself only
    says sum(x) <= n * used): the same integer solutions, a stronger relaxation. The solver uses it
    for its hints and cap; `lp_upper_bound` (the bench's reference) is the plain relaxation."""
    solver = pywraplp.Solver.CreateSolver("GLOP")
    if solver is None:  # pragma: no cover - GLOP ships with OR-Tools
        raise RuntimeError("GLOP is not available")
    return _coverage_model(st, solver, integer=False, tight=tight)


def mip_bound(st: Structure, time_limit_s: float) -> tuple[float, float]:
    """(best solution, proven bound) of the same coverage model as a MIP (SCIP): a reference
    that tells how far the LP bound itself is from the integer optimum."""
    solver = pywraplp.Solver.CreateSolver("SCIP")
    if solver is None:  # pragma: no cover
        raise RuntimeError("SCIP is not available")
    solver.SetTimeLimit(int(time_limit_s * 1000))
    value, _ = _coverage_model(st, solver, integer=True)
    return value, float(solver.Objective().BestBound())


def _coverage_model(st: Structure, solver: pywraplp.Solver, *, integer: bool,
                    tight: bool = False) -> tuple[float, list[float]]:
    problem = st.problem
    def var() -> pywraplp.Variable:
        return solver.IntVar(0.0, 1.0, "") if integer else solver.NumVar(0.0, 1.0, "")

    x = [var() for _ in st.cands]
    for g in st.groups:
        solver.Add(sum(x[i] for i in g.members) <= g.limit)
    ys_of_room_teacher = defaultdict(list)
    for (cid, subject), teachers in st.continuity.items():
        need = problem.classrooms[cid].needs[subject]
        ys = []
        for teacher, members in teachers.items():
            y = var()
            ys.append(y)
            for i in members:
                solver.Add(x[i] <= y)
            solver.Add(sum(x[i] for i in members) <= min(need, len(members)) * y)
            ys_of_room_teacher[(cid, teacher)].append(y)
        if len(ys) > 1:
            solver.Add(sum(ys) <= 1)
    rooms_of_teacher = defaultdict(list)
    for (_, teacher), ys in ys_of_room_teacher.items():
        if len(ys) == 1:
            rooms_of_teacher[teacher].append(ys[0])
        else:
            z = var()
            for y in ys:
                solver.Add(y <= z)
            rooms_of_teacher[teacher].append(z)
    for teacher, zs in rooms_of_teacher.items():
        cap = problem.teachers[teacher].max_classrooms
        if cap is not None and len(zs) > cap:
            solver.Add(sum(zs) <= cap)
    used = {}
    for ks, limit in st.urban_link:
        for k in ks:
            if k not in used:
                used[k] = var()
                solver.Add(sum(x[i] for i in st.by_class[k]) <= len(st.by_class[k]) * used[k])
                if tight:
                    for i in st.by_class[k]:
                        solver.Add(x[i] <= used[k])
        solver.Add(sum(used[k] for k in ks) <= limit)
    solver.Maximize(sum(x))
    status = solver.Solve()
    if status not in (pywraplp.Solver.OPTIMAL, pywraplp.Solver.FEASIBLE):
        raise RuntimeError(f"coverage model: no solution (status {status})")
    return float(solver.Objective().Value()), [v.solution_value() for v in x]
