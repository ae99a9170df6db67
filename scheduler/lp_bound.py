"""The LP relaxation of the coverage model: an upper bound on covered periods.

The model is written straight into an `MPModelProto` (no per-term Python expressions) and solved
through `SolveWithProto`. Small models go to GLOP (simplex, exact); large ones to PDLP (first-order,
scales to province-size models where GLOP's degenerate pivots take minutes — GLOP needed 47 s for
32,000 candidate pairs, PDLP 1–2 s). PDLP's answer is approximate, so its bound is not its primal
objective but the value of its dual solution (weak duality, clipped to be dual feasible): a valid
upper bound whatever the accuracy reached, also when its time limit stops it early.
"""

from __future__ import annotations

import math
import time
from collections import defaultdict

import numpy as np
from ortools.linear_solver import linear_solver_pb2, pywraplp

from scheduler.structure import Structure

GLOP_MAX_CANDIDATES = 5_000  # above this PDLP (GLOP's time grows much faster than linearly here)
PDLP_THREADS = 2


def lp_upper_bound(st: Structure, time_limit_s: float | None = None) -> float:
    """Maximise covered periods with every 0/1 variable relaxed to [0, 1].

    Without a time limit the answer is the LP optimum (GLOP), or within PDLP's tolerance above it
    (large models). With one (building the LP included), a solve cut short gives the trivial bound
    (GLOP) or its dual bound (PDLP): never below the LP optimum."""
    return lp_relaxation(st, time_limit_s=time_limit_s)[0]


def lp_relaxation(st: Structure, *, tight: bool = False,
                  time_limit_s: float | None = None) -> tuple[float, list[float] | None]:
    """An upper bound from the LP relaxation and the value of each candidate's x in the LP solution
    (None when the solve found none in its time).

    `tight` adds the valid inequalities x <= used(class) for urban links (the model itself only
    says sum(x) <= n * used): the same integer solutions, a stronger relaxation. The solver uses it
    for its hints and cap; `lp_upper_bound` (the bench's reference) is the plain relaxation."""
    t0 = time.monotonic()
    lp = _CoverageLP(st, integer=False, tight=tight)
    pdlp = len(st.cands) > GLOP_MAX_CANDIDATES
    request = linear_solver_pb2.MPModelRequest()
    request.model.CopyFrom(lp.proto)
    request.solver_type = (linear_solver_pb2.MPModelRequest.PDLP_LINEAR_PROGRAMMING if pdlp
                           else linear_solver_pb2.MPModelRequest.GLOP_LINEAR_PROGRAMMING)
    if pdlp:
        request.solver_specific_parameters = f"num_threads: {PDLP_THREADS}"
    if time_limit_s is not None:
        request.solver_time_limit_seconds = max(0.01, time_limit_s - (time.monotonic() - t0))
    response = linear_solver_pb2.MPSolutionResponse()
    pywraplp.Solver.SolveWithProto(request, response)
    n = len(st.cands)
    solved = response.status in (linear_solver_pb2.MPSOLVER_OPTIMAL, linear_solver_pb2.MPSOLVER_FEASIBLE)
    values = list(response.variable_value[:n]) if len(response.variable_value) >= n else None
    if not pdlp:
        if not solved:
            return lp.trivial, None
        return min(float(response.objective_value), lp.trivial), values
    if len(response.dual_value) != lp.n_rows:
        return lp.trivial, values
    return min(lp.dual_bound(np.asarray(response.dual_value)), lp.trivial), values


def mip_bound(st: Structure, time_limit_s: float) -> tuple[float, float]:
    """(best solution, proven bound) of the same coverage model as a MIP (SCIP): a reference
    that tells how far the LP bound itself is from the integer optimum."""
    lp = _CoverageLP(st, integer=True)
    request = linear_solver_pb2.MPModelRequest()
    request.model.CopyFrom(lp.proto)
    request.solver_type = linear_solver_pb2.MPModelRequest.SCIP_MIXED_INTEGER_PROGRAMMING
    request.solver_time_limit_seconds = time_limit_s
    response = linear_solver_pb2.MPSolutionResponse()
    pywraplp.Solver.SolveWithProto(request, response)
    if response.status not in (linear_solver_pb2.MPSOLVER_OPTIMAL, linear_solver_pb2.MPSOLVER_FEASIBLE):
        return 0.0, float(lp.trivial)
    return float(response.objective_value), min(float(response.best_objective_bound), lp.trivial)


class _CoverageLP:
    """max sum(x) s.t. rows (each sum(a x) <= b), every variable in [0, 1]; x are the first
    len(st.cands) variables. The rows are kept as arrays for the dual bound."""

    def __init__(self, st: Structure, *, integer: bool, tight: bool = False) -> None:
        problem = st.problem
        n = len(st.cands)
        self.n_vars = n
        rows: list[tuple[list[int], list[float], float]] = []

        def var() -> int:
            self.n_vars += 1
            return self.n_vars - 1

        for g in st.groups:
            rows.append((g.members, [1.0] * len(g.members), float(g.limit)))
        ys_of_room_teacher: dict[tuple[str, str], list[int]] = defaultdict(list)
        for (cid, subject), teachers in st.continuity.items():
            need = problem.classrooms[cid].needs[subject]
            ys = []
            for teacher, members in teachers.items():
                y = var()
                ys.append(y)
                for i in members:
                    rows.append(([i, y], [1.0, -1.0], 0.0))
                rows.append(([*members, y], [1.0] * len(members) + [-float(min(need, len(members)))], 0.0))
                ys_of_room_teacher[(cid, teacher)].append(y)
            if len(ys) > 1:
                rows.append((ys, [1.0] * len(ys), 1.0))
        rooms_of_teacher: dict[str, list[int]] = defaultdict(list)
        for (_, teacher), ys in ys_of_room_teacher.items():
            if len(ys) == 1:
                rooms_of_teacher[teacher].append(ys[0])
            else:
                z = var()
                for y in ys:
                    rows.append(([y, z], [1.0, -1.0], 0.0))
                rooms_of_teacher[teacher].append(z)
        for teacher, zs in rooms_of_teacher.items():
            cap = problem.teachers[teacher].max_classrooms
            if cap is not None and len(zs) > cap:
                rows.append((zs, [1.0] * len(zs), float(cap)))
        used: dict[str, int] = {}
        for ks, limit in st.urban_link:
            for k in ks:
                if k not in used:
                    u = used[k] = var()
                    members = st.by_class[k]
                    rows.append(([*members, u], [1.0] * len(members) + [-float(len(members))], 0.0))
                    if tight:
                        for i in members:
                            rows.append(([i, u], [1.0, -1.0], 0.0))
            rows.append(([used[k] for k in ks], [1.0] * len(ks), float(limit)))
        # every classroom-subject gets at most its need: a bound that holds whatever the LP says
        self.trivial = float(sum(min(problem.classrooms[c].needs[s], sum(len(m) for m in ts.values()))
                                 for (c, s), ts in st.continuity.items()))
        self.n_rows = len(rows)
        proto = self.proto = linear_solver_pb2.MPModelProto()
        proto.maximize = True
        for j in range(self.n_vars):
            proto.variable.add(lower_bound=0.0, upper_bound=1.0, objective_coefficient=1.0 if j < n else 0.0,
                               is_integer=integer)
        row_of: list[int] = []
        cols: list[int] = []
        coefs: list[float] = []
        rhs: list[float] = []
        for r, (members, a, b) in enumerate(rows):
            ct = proto.constraint.add(lower_bound=-math.inf, upper_bound=b)
            ct.var_index.extend(members)
            ct.coefficient.extend(a)
            row_of.extend([r] * len(members))
            cols.extend(members)
            coefs.extend(a)
            rhs.append(b)
        self.row_of = np.asarray(row_of, dtype=np.int64)
        self.cols = np.asarray(cols, dtype=np.int64)
        self.coefs = np.asarray(coefs, dtype=np.float64)
        self.rhs = np.asarray(rhs, dtype=np.float64)
        self.cost = np.zeros(self.n_vars)
        self.cost[:n] = 1.0

    def dual_bound(self, duals: np.ndarray) -> float:
        """Weak duality for max c x, A x <= b, 0 <= x <= 1: for any y >= 0,
        c x <= b y + sum_j max(0, c_j - (A^T y)_j). Any dual vector gives a valid bound."""
        y = np.maximum(duals, 0.0)  # MPSolver's duals of <= rows are >= 0 when maximising
        aty = np.bincount(self.cols, weights=self.coefs * y[self.row_of], minlength=self.n_vars)
        return float(self.rhs @ y + np.maximum(self.cost - aty, 0.0).sum())
