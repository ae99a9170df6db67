"""The timetable solver on OR-Tools CP-SAT, lexicographic in stages:
(keep previous assignments) > covered periods > fairness > preferences.

Each stage maximises one objective, then fixes it at the value reached (never below) and hands its
solution to the next stage as a hint. The best solution and the proven bound of every stage are
reported.
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

from ortools.sat.python import cp_model

from scheduler.candidates import alignment_score
from scheduler.greedy import greedy, lp_round
from scheduler.lp_bound import lp_relaxation
from scheduler.model import Problem
from scheduler.structure import Structure, build_structure, restrict, split

log = logging.getLogger("scheduler.solver")

FAIRNESS_SCALE = 1000  # the lowest coverage ratio in per mille
PARTNER_WEIGHT = 100  # per period joined from a partner (结对) school
SHARED_TEACHER_WEIGHT = 30  # per extra subject a classroom takes from a teacher it already has
PRIMARY_SHARE = 0.8  # of the time limit for kept assignments and coverage (all parts); the rest: fairness+preferences
KEEP_SHARE = 0.25  # of a part's primary time for the kept-assignments stage
NEAR_SHARE = 0.7  # of a part's coverage time for the model restricted to the LP's teachers
LNS_MIN_CANDIDATES = 300  # parts this large search coverage by LNS only (small ones prove optimality)
MIN_SLICE_S = 0.5  # every part's stage gets at least this (fairness: reserved within the limit)
END_MARGIN = 0.02  # of the time limit (at most 1 s) kept for the work after the last search
LP_SHARE = 0.4  # at most this share of a part's coverage time for its LP relaxation (building included)
LP_EPS = 1e-3  # LP values below this count as 0 (PDLP, used for large parts, is approximate)
# parts larger than this (e.g. a province matched across counties: 350,000 pairs) never get a
# CP-SAT model of their own: building and loading one takes most of a minute and its search finds
# nothing in the time. They are searched in the neighbourhood of the LP and greedy solutions.
FULL_MODEL_MAX_CANDIDATES = 20_000
NEIGHBOURHOOD_TEACHERS = 2  # per classroom-subject of a large part, besides the current solution's teacher
NEIGHBOURHOOD_MIN_WEIGHT = 0.1  # periods of LP weight a teacher needs to be among those


@dataclass
class SolveOptions:
    time_limit_s: float = 30.0
    workers: int = 0  # 0: one per CPU
    keep: list[tuple[str, str]] | None = None  # previous (classroom, class) pairs: minimal change
    greedy_hint: bool = True
    seed: int = 0


@dataclass
class StageReport:
    name: str
    value: float
    bound: float
    optimal: bool
    wall_s: float

    def to_json(self) -> dict[str, object]:
        return {"name": self.name, "value": self.value, "bound": self.bound, "optimal": self.optimal,
                "wall_s": round(self.wall_s, 3)}


@dataclass
class SolveResult:
    structure: Structure
    chosen: list[int]
    stages: list[StageReport] = field(default_factory=list)
    lp_bound: float = 0.0  # the LP relaxation (with the x <= used cuts), summed over the parts
    wall_s: float = 0.0

    @property
    def covered(self) -> int:
        return len(self.chosen)

    @property
    def coverage_bound(self) -> float:
        for s in self.stages:
            if s.name == "coverage":
                return s.bound
        return float(len(self.chosen))


class _Progress(cp_model.CpSolverSolutionCallback):
    """Logs each incumbent with the current bound (at most one line per 0.5 s, plus the last)."""

    def __init__(self, stage: str) -> None:
        super().__init__()
        self.stage = stage
        self.last = 0.0
        self.count = 0

    def on_solution_callback(self) -> None:
        self.count += 1
        now = time.monotonic()
        if now - self.last >= 0.5:
            self.last = now
            log.info("%s: solution %d value %.0f bound %.0f at %.1fs", self.stage, self.count,
                     self.objective_value, self.best_objective_bound, self.wall_time)


class _Model:
    def __init__(self, st: Structure) -> None:
        self.st = st
        problem = st.problem
        m = self.m = cp_model.CpModel()
        cands = st.cands
        self.x = [m.new_bool_var("") for _ in cands]
        x = self.x
        for g in st.groups:
            if g.limit == 1:
                m.add_at_most_one(x[i] for i in g.members)
            else:
                m.add(cp_model.LinearExpr.sum([x[i] for i in g.members]) <= g.limit)
        self.y: dict[tuple[str, str, str], cp_model.IntVar] = {}
        self.z: dict[tuple[str, str], cp_model.IntVar] = {}
        ys_of_room_teacher: dict[tuple[str, str], list[cp_model.IntVar]] = defaultdict(list)
        for (cid, subject), teachers in st.continuity.items():
            need = problem.classrooms[cid].needs[subject]
            ys = []
            for teacher, members in teachers.items():
                y = m.new_bool_var("")
                self.y[(cid, subject, teacher)] = y
                ys.append(y)
                for i in members:  # implied by the sum below, but tightens CP-SAT's relaxation
                    m.add_implication(x[i], y)
                xs = cp_model.LinearExpr.sum([x[i] for i in members])
                m.add(xs <= min(need, len(members)) * y)
                m.add(xs >= y)
                ys_of_room_teacher[(cid, teacher)].append(y)
            if len(ys) > 1:
                m.add_at_most_one(ys)
        self.shared: list[tuple[list[cp_model.IntVar], cp_model.IntVar]] = []
        rooms_of_teacher: dict[str, list[cp_model.IntVar]] = defaultdict(list)
        for (cid, teacher), ys in ys_of_room_teacher.items():
            if len(ys) == 1:
                z = ys[0]
            else:
                z = m.new_bool_var("")
                for y in ys:
                    m.add_implication(y, z)
                m.add(sum(ys) >= z)
                self.shared.append((ys, z))
            self.z[(cid, teacher)] = z
            rooms_of_teacher[teacher].append(z)
        for teacher, zs in rooms_of_teacher.items():
            cap = problem.teachers[teacher].max_classrooms
            if cap is not None and len(zs) > cap:
                m.add(sum(zs) <= cap)
        self.used: dict[str, cp_model.IntVar] = {}
        for ks, limit in st.urban_link:
            for k in ks:
                if k not in self.used:
                    u = self.used[k] = m.new_bool_var("")
                    xs = cp_model.LinearExpr.sum([x[i] for i in st.by_class[k]])
                    m.add(xs <= len(st.by_class[k]) * u)
                    m.add(xs >= u)
                    for i in st.by_class[k]:  # implied by the sum, but tightens propagation and the LP
                        m.add_implication(x[i], u)
            m.add(sum(self.used[k] for k in ks) <= limit)
        self.r = m.new_int_var(0, FAIRNESS_SCALE, "fairness")
        for cid, idx in st.by_classroom.items():
            ub = st.upper.get(cid, 0)
            if ub > 0:
                m.add(FAIRNESS_SCALE * cp_model.LinearExpr.sum([x[i] for i in idx]) >= ub * self.r)
        self.all_vars: list[cp_model.IntVar] = [*x, *self.y.values(), *(z for _, z in self.shared),
                                                *self.used.values(), self.r]

    def coverage(self) -> cp_model.LinearExprT:
        return cp_model.LinearExpr.sum(self.x)

    def fair_then_preferences(self) -> tuple[cp_model.LinearExprT, int]:
        """Fairness and preferences as one stage: fairness x SCALE + preferences, with SCALE above
        the largest preference score, so the order stays strictly lexicographic."""
        pref, top = self.preferences()
        scale = top + 1
        return cp_model.LinearExpr.weighted_sum([self.r, pref], [scale, 1]), scale

    def preferences(self) -> tuple[cp_model.LinearExprT, int]:
        """The preference score and its largest possible value."""
        tol = self.st.problem.settings.tolerance_min
        xs, ws = [], []
        for i, c in enumerate(self.st.cands):
            w = alignment_score(c, tol) + (PARTNER_WEIGHT if c.partner else 0)
            if w:
                xs.append(self.x[i])
                ws.append(w)
        for ys, z in self.shared:
            xs += [*ys, z]
            ws += [SHARED_TEACHER_WEIGHT] * len(ys) + [-SHARED_TEACHER_WEIGHT]
        top = sum(w for w in ws if w > 0)
        return cp_model.LinearExpr.weighted_sum(xs, ws), top

    def hint_from_x(self, chosen: Iterable[int]) -> None:
        """A complete hint from a set of chosen candidates (derives y, z, used and r)."""
        st = self.st
        chosen = set(chosen)
        vals: dict[int, int] = {}
        for i, v in enumerate(self.x):
            vals[v.index] = int(i in chosen)
        used_rt: set[tuple[str, str, str]] = set()
        for i in chosen:
            c = st.cands[i]
            used_rt.add((c.classroom, c.subject, c.teacher))
        for key, y in self.y.items():
            vals[y.index] = int(key in used_rt)
        for ys, z in self.shared:
            vals[z.index] = int(any(vals[y.index] for y in ys))
        used_k = {st.cands[i].cls for i in chosen}
        for k, u in self.used.items():
            vals[u.index] = int(k in used_k)
        vals[self.r.index] = fairness_value(st, chosen)
        self.m.clear_hints()
        for v in self.all_vars:
            self.m.add_hint(v, vals[v.index])


def _trivial_bound(st: Structure) -> int:
    """Covered periods can never exceed this: each classroom-subject's need or its candidates."""
    return sum(min(st.problem.classrooms[c].needs[s], sum(len(m) for m in ts.values()))
               for (c, s), ts in st.continuity.items())


def fairness_value(st: Structure, chosen: Iterable[int]) -> int:
    """The lowest per-mille ratio covered / attainable among classrooms that can get anything."""
    per_room: dict[str, int] = defaultdict(int)
    for i in chosen:
        per_room[st.cands[i].classroom] += 1
    ratios = [FAIRNESS_SCALE * per_room[cid] // ub for cid, ub in st.upper.items() if ub > 0]
    return min(ratios) if ratios else FAIRNESS_SCALE


def preference_value(st: Structure, chosen: Iterable[int]) -> int:
    """The preference score of a set of chosen candidates (as in `_Model.preferences`)."""
    tol = st.problem.settings.tolerance_min
    chosen = set(chosen)
    score = sum(alignment_score(st.cands[i], tol) + (PARTNER_WEIGHT if st.cands[i].partner else 0) for i in chosen)
    subjects: dict[tuple[str, str], set[str]] = defaultdict(set)
    for i in chosen:
        c = st.cands[i]
        subjects[(c.classroom, c.teacher)].add(c.subject)
    return score + SHARED_TEACHER_WEIGHT * sum(len(v) - 1 for v in subjects.values())


def solve(problem: Problem, options: SolveOptions | None = None, st: Structure | None = None) -> SolveResult:
    """Solve every independent part of the model.

    The time limit is shared in two rounds: first (kept assignments and) covered periods for every
    part, smallest part first, each with a share of what is left in proportion to its size, so time
    a part does not need rolls over to the larger ones; then fairness and preferences for every
    part, each with at least `MIN_SLICE_S` and the coverage solution as its hint.
    """
    options = options or SolveOptions()
    t0 = time.monotonic()
    st = st or build_structure(problem)
    parts = sorted(split(st), key=lambda p: len(p.cands))
    log.info("model: %d candidate pairs, %d constraint groups, %d classroom-subjects, %d independent part(s)",
             len(st.cands), len(st.groups), len(st.continuity), len(parts))
    index = {(c.classroom, c.cls): i for i, c in enumerate(st.cands)}
    # a margin for what follows the last search (reading its solution back, the reports)
    deadline = t0 + options.time_limit_s - min(1.0, END_MARGIN * options.time_limit_s)
    reserve = max((1 - PRIMARY_SHARE) * options.time_limit_s, MIN_SLICE_S * len(parts))
    primary_deadline = min(t0 + options.time_limit_s * PRIMARY_SHARE, deadline - reserve)
    runs = [_Part(part, options) for part in parts]
    total_size = sum(max(1, len(p.cands)) for p in parts)
    remaining_size = total_size
    for n, run in enumerate(runs):
        size = max(1, len(run.st.cands))
        budget = max(MIN_SLICE_S, (primary_deadline - time.monotonic()) * size / remaining_size)
        remaining_size -= size
        if len(runs) > 1 and size > 1000:
            log.info("part %d/%d: %d candidate pairs, %.1fs for coverage", n + 1, len(runs), size, budget)
        run.primary(budget)
    remaining_size = total_size
    for run in runs:
        size = max(1, len(run.st.cands))
        budget = max(MIN_SLICE_S, (deadline - time.monotonic()) * size / remaining_size)
        remaining_size -= size
        run.secondary(budget)
    totals: dict[str, StageReport] = {}
    chosen: list[int] = []
    lp_total = 0.0
    for run in runs:
        chosen += [index[(run.st.cands[i].classroom, run.st.cands[i].cls)] for i in run.chosen]
        lp_total += run.lp if run.lp is not None else float(_trivial_bound(run.st))
        for r in run.reports:
            t = totals.get(r.name)
            if t is None:
                totals[r.name] = StageReport(r.name, r.value, r.bound, r.optimal, r.wall_s)
            elif r.name == "fairness":  # the lowest ratio over all parts
                t.value, t.bound = min(t.value, r.value), min(t.bound, r.bound)
                t.optimal, t.wall_s = t.optimal and r.optimal, t.wall_s + r.wall_s
            else:
                t.value, t.bound = t.value + r.value, t.bound + r.bound
                t.optimal, t.wall_s = t.optimal and r.optimal, t.wall_s + r.wall_s
    result = SolveResult(st, sorted(chosen), list(totals.values()), lp_bound=lp_total)
    result.wall_s = time.monotonic() - t0
    return result


def _lp_teachers(st: Structure, values: list[float], chosen: Iterable[int] = ()) -> set[int]:
    """Candidates of the teachers the LP relaxation uses for each classroom-subject (and of the
    teachers `chosen` uses, so that a solution stays inside)."""
    chosen = set(chosen)
    keep: set[int] = set()
    for teachers in st.continuity.values():
        for members in teachers.values():
            if any(values[i] > LP_EPS or i in chosen for i in members):
                keep.update(members)
    return keep


def _neighbourhood(st: Structure, values: list[float] | None, chosen: Iterable[int]) -> list[int]:
    """For a large part: per classroom-subject, the candidates of the teacher `chosen` uses and of
    the (at most NEIGHBOURHOOD_TEACHERS) teachers with the most LP weight, if at least
    NEIGHBOURHOOD_MIN_WEIGHT. PDLP spreads small values over many teachers, so "any LP value"
    would keep nearly every pair."""
    chosen = set(chosen)
    keep: list[int] = []
    for teachers in st.continuity.values():
        weighted = []
        for teacher, members in teachers.items():
            if any(i in chosen for i in members):
                keep += members
            elif values is not None:
                weight = sum(values[i] for i in members)
                if weight >= NEIGHBOURHOOD_MIN_WEIGHT:
                    weighted.append((-weight, teacher))
        for _, teacher in sorted(weighted)[:NEIGHBOURHOOD_TEACHERS]:
            keep += teachers[teacher]
    return sorted(set(keep))


def _preference_top(st: Structure) -> int:
    """The largest possible preference score (as `_Model.preferences`), without building a model."""
    tol = st.problem.settings.tolerance_min
    top = sum(alignment_score(c, tol) + (PARTNER_WEIGHT if c.partner else 0) for c in st.cands)
    subjects: dict[tuple[str, str], int] = defaultdict(int)
    for (cid, _), teachers in st.continuity.items():
        for teacher in teachers:
            subjects[(cid, teacher)] += 1
    return top + SHARED_TEACHER_WEIGHT * sum(n for n in subjects.values() if n > 1)


class _Part:
    """One independent part: its model, the best solution so far and the stage reports."""

    def __init__(self, st: Structure, options: SolveOptions) -> None:
        self.st = st
        self.options = options
        self.workers = options.workers or os.cpu_count() or 1
        self._model: _Model | None = None  # built on first use, inside the part's time
        # the structure the CP-SAT model is built on: the part itself, or for a part above
        # FULL_MODEL_MAX_CANDIDATES a neighbourhood (`view`: its candidates' indices in the part)
        self.work = st
        self.view: list[int] | None = None
        self.local: dict[int, int] = {}
        self.chosen: list[int] = []  # indices into self.st.cands
        self.reports: list[StageReport] = []
        self.lp: float | None = None  # the (tight) LP relaxation's optimum: an upper bound on coverage

    @property
    def model(self) -> _Model:
        if self._model is None:
            self._model = _Model(self.work)
        return self._model

    def _to_work(self, idx: Iterable[int]) -> list[int]:
        if self.view is None:
            return list(idx)
        return [self.local[i] for i in idx if i in self.local]

    def _hint(self) -> None:
        self.model.hint_from_x(self._to_work(self.chosen))

    def _solver(self, budget: float, lns_only: bool = False, presolve: bool = True) -> cp_model.CpSolver:
        solver = cp_model.CpSolver()
        p = solver.parameters
        p.max_time_in_seconds = max(0.05, budget)
        p.num_workers = self.workers
        p.random_seed = self.options.seed
        p.linearization_level = 2  # clauses and implications in CP-SAT's LP: much tighter bounds here
        # with the LP bound as a cap, every worker improving the hint (LNS) beats proving bounds
        p.use_lns_only = lns_only
        # without presolve the complete hint is the first solution at once, even in a short slice
        p.cp_model_presolve = presolve
        return solver

    def _run(self, name: str, model: cp_model.CpModel, expr: cp_model.LinearExprT,
             budget: float, lns_only: bool = False, neighbourhood: bool = False,
             presolve: bool = True) -> tuple[cp_model.CpSolver, bool, float] | None:
        """Maximise `expr`: (solver, optimal, wall) when a solution was found, else None."""
        model.maximize(expr)
        solver = self._solver(budget, lns_only, presolve)
        ts = time.monotonic()
        status = solver.solve(model, _Progress(name))
        wall = time.monotonic() - ts
        if status == cp_model.INFEASIBLE and not neighbourhood:
            raise RuntimeError(f"stage {name}: model infeasible (a bug: the hint is feasible)")
        if status not in (cp_model.OPTIMAL, cp_model.FEASIBLE):
            log.warning("%s: no solution within %.1fs (%s); keeping the previous one", name, budget,
                        solver.status_name(status))
            return None
        return solver, status == cp_model.OPTIMAL, wall

    def _take(self, solver: cp_model.CpSolver) -> None:
        xs = [i for i, v in enumerate(self.model.x) if solver.boolean_value(v)]
        self.chosen = xs if self.view is None else [self.view[i] for i in xs]

    def primary(self, time_limit: float) -> None:
        """(Kept assignments, then) covered periods."""
        t0 = time.monotonic()
        st, options = self.st, self.options
        deadline = t0 + time_limit
        index = {(c.classroom, c.cls): i for i, c in enumerate(st.cands)}
        self.lp, values = lp_relaxation(st, tight=True, time_limit_s=LP_SHARE * time_limit)
        cap = min(math.floor(self.lp + 1e-4), _trivial_bound(st))
        if len(st.cands) > FULL_MODEL_MAX_CANDIDATES:
            self._primary_neighbourhood(values, cap, index, deadline)
            return
        model = self.model
        if options.keep is not None:
            keep_idx = [index[p] for p in options.keep if p in index]
            self.chosen = keep_idx
            model.hint_from_x(keep_idx)
            keep = cp_model.LinearExpr.sum([model.x[i] for i in keep_idx])
            out = self._run("keep", model.m, keep, KEEP_SHARE * time_limit)
            if out is None:
                # no solution in the slice (the kept pairs may clash with the new input): keep, in
                # order, every old pair that still fits, fill greedily and hold on to that many
                self.chosen = greedy(st, seed=keep_idx)
                value = len(set(self.chosen) & set(keep_idx))
                self.reports.append(StageReport("keep", value, len(keep_idx), False, 0.0))
                model.m.add(keep >= value)
                model.hint_from_x(self.chosen)
            else:
                solver, optimal, wall = out
                value = round(solver.objective_value)
                self.reports.append(StageReport("keep", value, solver.best_objective_bound, optimal, wall))
                self._take(solver)
                model.m.add(keep >= value)
                model.hint_from_x(self.chosen)
        else:
            self.chosen = self._first_solution(values)
            model.hint_from_x(self.chosen)
        ts = time.monotonic()
        coverage = model.coverage()
        bound = float(cap)
        large = len(st.cands) >= LNS_MIN_CANDIDATES and values is not None
        if len(self.chosen) < cap and large and options.keep is None and values is not None:
            # first within the teachers the LP relaxation picks: a much smaller model, near-optimal
            # (RINS-like: what the LP sets to 1 stays, only its teachers are open for the rest)
            near = model.m.clone()
            lp_vals = values or []
            inside = _lp_teachers(st, lp_vals)
            for i in range(len(st.cands)):
                if i not in inside:
                    near.add(model.x[i] == 0)
                elif lp_vals[i] > 1 - LP_EPS:
                    near.add(model.x[i] == 1)
            near.add(coverage <= cap)
            out = self._run("coverage (LP neighbourhood)", near, coverage,
                            NEAR_SHARE * max(0.05, deadline - time.monotonic()), neighbourhood=True)
            if out is not None and round(out[0].objective_value) > len(self.chosen):
                self._take(out[0])
                model.hint_from_x(self.chosen)
        if len(self.chosen) < cap:
            model.m.add(coverage <= cap)  # the LP bound: CP-SAT stops as soon as it is reached
            out = self._run("coverage", model.m, coverage, max(0.05, deadline - time.monotonic()), lns_only=large)
            if out is not None:
                solver = out[0]
                bound = min(bound, solver.best_objective_bound)
                if round(solver.objective_value) > len(self.chosen):
                    self._take(solver)
        value = len(self.chosen)
        self.reports.append(StageReport("coverage", value, max(bound, value), value >= bound,
                                        time.monotonic() - ts))
        if len(st.cands) > 1000:
            log.info("coverage: value %d bound %.0f (LP %.1f) in %.1fs", value, bound, self.lp or -1,
                     time.monotonic() - t0)
        model.m.add(coverage >= value)
        model.hint_from_x(self.chosen)

    def _first_solution(self, values: list[float] | None) -> list[int]:
        """The start without kept assignments: the greedy solution, or the LP's rounding if it covers more."""
        if not self.options.greedy_hint:
            return []
        chosen = greedy(self.st)
        if values is not None:
            rounded = lp_round(self.st, values)
            if len(rounded) > len(chosen):
                chosen = rounded
        return chosen

    def _primary_neighbourhood(self, values: list[float] | None, cap: int, index: dict[tuple[str, str], int],
                               deadline: float) -> None:
        """Coverage for a part too large for a CP-SAT model of its own: the greedy solution (or the
        LP's rounding, or with kept assignments the greedy fill around them), then CP-SAT on the
        candidates of the teachers the LP or that solution uses per classroom-subject. The bound
        reported is the LP's."""
        st, options = self.st, self.options
        ts = time.monotonic()
        keep_idx = [index[p] for p in options.keep if p in index] if options.keep is not None else None
        if keep_idx is not None:
            self.chosen = greedy(st, seed=keep_idx)
        else:
            self.chosen = self._first_solution(values)
        self.view = _neighbourhood(st, values, self.chosen)
        self.local = {g: n for n, g in enumerate(self.view)}
        self.work = restrict(st, self.view)
        log.info("coverage: LP %.1f, first solution %d; neighbourhood of %d of %d candidate pairs",
                 self.lp or -1, len(self.chosen), len(self.view), len(st.cands))
        model = self.model
        coverage = model.coverage()
        if keep_idx is not None:
            value = len(set(self.chosen) & set(keep_idx))
            self.reports.append(StageReport("keep", value, len(keep_idx), False, 0.0))
            model.m.add(cp_model.LinearExpr.sum([model.x[i] for i in self._to_work(keep_idx)]) >= value)
        self._hint()
        if len(self.chosen) < cap and time.monotonic() < deadline:
            model.m.add(coverage <= cap)
            out = self._run("coverage (neighbourhood)", model.m, coverage, max(0.05, deadline - time.monotonic()),
                            lns_only=len(self.work.cands) >= LNS_MIN_CANDIDATES, neighbourhood=True,
                            presolve=False)  # presolving tens of thousands of pairs takes the whole slice
            if out is not None and round(out[0].objective_value) > len(self.chosen):
                self._take(out[0])
        value = len(self.chosen)
        self.reports.append(StageReport("coverage", value, max(cap, value), value >= cap, time.monotonic() - ts))
        log.info("coverage: value %d bound %d in %.1fs", value, cap, time.monotonic() - ts)
        model.m.add(coverage >= value)
        self._hint()

    def secondary(self, time_limit: float) -> None:
        """Fairness, then preferences, with the coverage reached fixed; the coverage solution is the hint.

        In a neighbourhood (large parts) the search is restricted, so the bounds reported are the
        trivial ones."""
        end = time.monotonic() + time_limit  # preparing the stage counts too
        model = self.model
        combined, scale = model.fair_then_preferences()
        self._hint()
        out = self._run("fairness+preferences", model.m, combined, max(0.05, end - time.monotonic()),
                        presolve=False)
        if out is None or self.view is not None:
            if out is not None:
                self._take(out[0])
            self.reports.append(StageReport("fairness", fairness_value(self.st, self.chosen), FAIRNESS_SCALE,
                                            False, time_limit if out is None else out[2]))
            self.reports.append(StageReport("preferences", preference_value(self.st, self.chosen),
                                            _preference_top(self.st), False, 0.0))
            return
        solver, optimal, wall = out
        value = round(solver.objective_value)
        bound = solver.best_objective_bound
        fair_bound = min(FAIRNESS_SCALE, int(bound // scale))
        pref_bound = bound - scale * (value // scale) if fair_bound == value // scale else scale - 1
        self._take(solver)
        # the values of the solution itself (CP-SAT's fairness variable may sit below them when not optimal)
        self.reports.append(StageReport("fairness", fairness_value(self.st, self.chosen), fair_bound, optimal, wall))
        self.reports.append(StageReport("preferences", preference_value(self.st, self.chosen), pref_bound, optimal,
                                        0.0))
