"""The coverage model's constraints as index sets over candidates, shared by CP-SAT, the LP bound
and the greedy baseline. Every "at once" limit is written as one constraint per clique of
overlapping times (for intervals, the cliques at each start time are all that is needed)."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from scheduler.candidates import Candidate, build_candidates
from scheduler.model import Problem


@dataclass
class Group:
    members: list[int]
    limit: int
    kind: str  # need, day, clash, capacity, rural_link


@dataclass
class Structure:
    problem: Problem
    cands: list[Candidate]
    groups: list[Group] = field(default_factory=list)
    # continuity: (classroom, subject) -> teacher -> candidate indices
    continuity: dict[tuple[str, str], dict[str, list[int]]] = field(default_factory=dict)
    # urban links: school -> list of (class cliques, limit); a class counts once if anyone joins it
    urban_link: list[tuple[list[str], int]] = field(default_factory=list)
    by_class: dict[str, list[int]] = field(default_factory=dict)
    by_classroom: dict[str, list[int]] = field(default_factory=dict)
    upper: dict[str, int] = field(default_factory=dict)  # classroom -> periods it could get alone


def _cliques(items: list[tuple[int, int, int]], min_size: int = 2) -> list[list[int]]:
    """items (start, end, key): the maximal sets of at least `min_size` keys whose intervals share a moment."""
    starts = sorted({s for s, _, _ in items})
    sets: list[frozenset[int]] = []
    for p in starts:
        active = frozenset(k for s, e, k in items if s <= p < e)
        if len(active) >= min_size:
            sets.append(active)
    sets = list(dict.fromkeys(sets))
    return [sorted(a) for a in sets if not any(a < b for b in sets)]


def build_structure(problem: Problem, cands: list[Candidate] | None = None) -> Structure:
    cands = build_candidates(problem) if cands is None else cands
    st = Structure(problem, cands)
    by_cs: dict[tuple[str, str], list[int]] = defaultdict(list)
    by_class: dict[str, list[int]] = defaultdict(list)
    by_room: dict[str, list[int]] = defaultdict(list)
    for i, c in enumerate(cands):
        by_cs[(c.classroom, c.subject)].append(i)
        by_class[c.cls].append(i)
        by_room[c.classroom].append(i)
    st.by_class, st.by_classroom = dict(by_class), dict(by_room)
    for (cid, subject), idx in by_cs.items():
        need = problem.classrooms[cid].needs[subject]
        if len(idx) > need:
            st.groups.append(Group(idx, need, "need"))
        limit = problem.day_limit(cid, subject)
        per_day: dict[int, list[int]] = defaultdict(list)
        for i in idx:
            per_day[cands[i].weekday].append(i)
        for members in per_day.values():
            if len(members) > limit:
                st.groups.append(Group(members, limit, "day"))
        teachers: dict[str, list[int]] = defaultdict(list)
        for i in idx:
            teachers[cands[i].teacher].append(i)
        st.continuity[(cid, subject)] = dict(teachers)
    for k, idx in by_class.items():
        cap = problem.classes[k].capacity
        if len(idx) > cap:
            st.groups.append(Group(idx, cap, "capacity"))
    for idx in by_room.values():
        per_day = defaultdict(list)
        for i in idx:
            per_day[cands[i].weekday].append(i)
        for members in per_day.values():
            items = [(cands[i].start, cands[i].end, i) for i in members]
            # one period holds one lesson, even when two short classes would not overlap
            periods: dict[int, list[int]] = defaultdict(list)
            for i in members:
                periods[cands[i].period].append(i)
            cliques = _cliques(items)
            for same in periods.values():
                if len(same) > 1 and not any(set(same) <= set(q) for q in cliques):
                    cliques.append(sorted(same))
            st.groups.extend(Group(q, 1, "clash") for q in cliques)
    rooms_by_school: dict[str, list[str]] = defaultdict(list)
    for cid in by_room:
        rooms_by_school[problem.classrooms[cid].school].append(cid)
    for sid, rooms in rooms_by_school.items():
        link = problem.schools[sid].link_capacity
        if link is None:
            continue
        per_day = defaultdict(list)
        for cid in rooms:
            for i in by_room[cid]:
                per_day[cands[i].weekday].append(i)
        for members in per_day.values():
            for q in _at_once(members, cands, link):
                st.groups.append(Group(q, link, "rural_link"))
    classes_by_school: dict[str, list[str]] = defaultdict(list)
    for k in by_class:
        classes_by_school[problem.teacher_school(k).id].append(k)
    for sid, ks in classes_by_school.items():
        link = problem.schools[sid].link_capacity
        if link is None:
            continue
        keyed = {n: k for n, k in enumerate(ks)}
        per_day_k: dict[int, list[tuple[int, int, int]]] = defaultdict(list)
        for n, k in keyed.items():
            mc = problem.classes[k]
            per_day_k[mc.weekday].append((mc.start, mc.end, n))
        for items in per_day_k.values():
            for q in _cliques(items, min_size=1):  # a lone class counts too (link_capacity 0)
                if len(q) > link:
                    st.urban_link.append(([keyed[n] for n in q], link))
    st.upper = {cid: _alone_upper(problem, cands, by_cs, cid) for cid in problem.classrooms}
    return st


def _at_once(members: list[int], cands: list[Candidate], limit: int) -> list[list[int]]:
    """Cliques of candidates at the same moment, larger than the limit (rural links)."""
    items = [(cands[i].start, cands[i].end, i) for i in members]
    starts = sorted({s for s, _, _ in items})
    out: list[frozenset[int]] = []
    for p in starts:
        active = frozenset(i for s, e, i in items if s <= p < e)
        if len(active) > limit:
            out.append(active)
    out = list(dict.fromkeys(out))
    return [sorted(a) for a in out if not any(a < b for b in out)]


def _alone_upper(problem: Problem, cands: list[Candidate], by_cs: dict[tuple[str, str], list[int]],
                 cid: str) -> int:
    """Periods a classroom could get if it were alone: per subject, its best single teacher.

    Classes it can never join however the others are placed do not count: a school link of 0
    (its own or the class's urban school) or a teacher's weekly cap of 0. A classroom that can
    get nothing thus has 0 and stays out of the fairness objective instead of pinning it at 0.
    """
    total = 0
    room = problem.classrooms[cid]
    if problem.schools[room.school].link_capacity == 0:
        return 0
    for subject, need in room.needs.items():
        best = 0
        per_teacher: dict[str, dict[int, set[int]]] = defaultdict(lambda: defaultdict(set))
        for i in by_cs.get((cid, subject), []):
            c = cands[i]
            if problem.teachers[c.teacher].max_classrooms == 0 or problem.teacher_school(c.cls).link_capacity == 0:
                continue
            per_teacher[c.teacher][c.weekday].add(c.period)
        limit = problem.day_limit(cid, subject)
        for days in per_teacher.values():
            best = max(best, sum(min(limit, len(ps)) for ps in days.values()))
        total += min(need, best)
    return total


def split(st: Structure) -> list[Structure]:
    """Independent parts of the model (no constraint links them), largest first.

    Classrooms are linked through shared classes, teachers (continuity, weekly caps) and school
    links; with `match_scope: county` the parts are at most counties.
    """
    n = len(st.cands)
    parent = list(range(n))

    def find(a: int) -> int:
        while parent[a] != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a

    def union_all(members: list[int]) -> None:
        if not members:
            return
        r = find(members[0])
        for i in members[1:]:
            s = find(i)
            if s != r:
                parent[s] = r

    for g in st.groups:
        union_all(g.members)
    for idx in st.by_classroom.values():
        union_all(idx)
    by_teacher: dict[str, list[int]] = defaultdict(list)
    for i, c in enumerate(st.cands):
        by_teacher[c.teacher].append(i)
    for t, idx in by_teacher.items():
        if st.problem.teachers[t].max_classrooms is not None:
            union_all(idx)
    for ks, _ in st.urban_link:
        union_all([i for k in ks for i in st.by_class[k]])
    parts: dict[int, list[int]] = defaultdict(list)
    for i in range(n):
        parts[find(i)].append(i)
    if len(parts) <= 1:
        return [st]
    return sorted((restrict(st, idx) for idx in parts.values()), key=lambda s: -len(s.cands))


def restrict(st: Structure, keep: list[int]) -> Structure:
    """The model on the candidates `keep` only (sorted indices into st.cands; the others are 0).

    Used for the independent parts (where nothing is lost) and for neighbourhoods of large parts.
    Limits become redundant once a group has no more members than its limit; those are dropped."""
    local = {g: n for n, g in enumerate(keep)}
    sub = Structure(st.problem, [st.cands[i] for i in keep])
    for g in st.groups:
        members = [local[i] for i in g.members if i in local]
        if len(members) > g.limit:
            sub.groups.append(Group(members, g.limit, g.kind))
    for key, teachers in st.continuity.items():
        kept = {t: [local[i] for i in m if i in local] for t, m in teachers.items()}
        kept = {t: m for t, m in kept.items() if m}
        if kept:
            sub.continuity[key] = kept
    by_class = {k: [local[i] for i in m if i in local] for k, m in st.by_class.items()}
    sub.by_class = {k: m for k, m in by_class.items() if m}
    for ks, limit in st.urban_link:
        live = [k for k in ks if k in sub.by_class]
        if len(live) > limit:
            sub.urban_link.append((live, limit))
    by_room = {c: [local[i] for i in m if i in local] for c, m in st.by_classroom.items()}
    sub.by_classroom = {c: m for c, m in by_room.items() if m}
    sub.upper = {c: st.upper[c] for c in sub.by_classroom}
    return sub
