"""A greedy baseline: scarcest classroom-subjects first, each takes the teacher who gives it most.

It is the bench's point of comparison and the solver's first hint.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

from scheduler.structure import Structure


class Ledger:
    """Running counts of every limit, so a candidate can be tested in O(its groups)."""

    def __init__(self, st: Structure) -> None:
        self.st = st
        self.groups_of: list[list[int]] = [[] for _ in st.cands]
        for g, group in enumerate(st.groups):
            for i in group.members:
                self.groups_of[i].append(g)
        self.count = [0] * len(st.groups)
        self.urban_of: dict[str, list[int]] = defaultdict(list)
        for u, (ks, _) in enumerate(st.urban_link):
            for k in ks:
                self.urban_of[k].append(u)
        self.urban_count = [0] * len(st.urban_link)
        self.used_classes: dict[str, int] = defaultdict(int)
        self.teacher_rooms: dict[str, set[str]] = defaultdict(set)
        self.room_teacher_uses: dict[tuple[str, str], int] = defaultdict(int)
        self.chosen: set[int] = set()

    def fits(self, i: int) -> bool:
        st = self.st
        if i in self.chosen:
            return False
        if any(self.count[g] >= st.groups[g].limit for g in self.groups_of[i]):
            return False
        c = st.cands[i]
        if self.used_classes[c.cls] == 0 and any(
            self.urban_count[u] >= st.urban_link[u][1] for u in self.urban_of[c.cls]
        ):
            return False
        cap = st.problem.teachers[c.teacher].max_classrooms
        rooms = self.teacher_rooms[c.teacher]
        return not (cap is not None and c.classroom not in rooms and len(rooms) >= cap)

    def add(self, i: int) -> None:
        c = self.st.cands[i]
        self.chosen.add(i)
        for g in self.groups_of[i]:
            self.count[g] += 1
        if self.used_classes[c.cls] == 0:
            for u in self.urban_of[c.cls]:
                self.urban_count[u] += 1
        self.used_classes[c.cls] += 1
        self.teacher_rooms[c.teacher].add(c.classroom)
        self.room_teacher_uses[(c.classroom, c.teacher)] += 1


def greedy(st: Structure, seed: Iterable[int] = ()) -> list[int]:
    """Candidate indices chosen greedily (feasible for every constraint of the model).

    The `seed` candidates (e.g. the assignments kept from an earlier timetable) are taken first,
    in order, each one that still fits; classroom-subjects they start keep their teacher.
    """
    ledger = Ledger(st)
    problem = st.problem
    teacher_of: dict[tuple[str, str], str] = {}
    taken: dict[tuple[str, str], int] = defaultdict(int)
    for i in seed:
        c = st.cands[i]
        cs = (c.classroom, c.subject)
        if taken[cs] >= problem.classrooms[c.classroom].needs[c.subject]:
            continue
        if teacher_of.get(cs, c.teacher) == c.teacher and ledger.fits(i):
            ledger.add(i)
            teacher_of[cs] = c.teacher
            taken[cs] += 1
    order = sorted(
        st.continuity.items(),
        key=lambda kv: (sum(len(v) for v in kv[1].values()), -problem.classrooms[kv[0][0]].needs[kv[0][1]],
                        kv[0]),
    )
    for (cid, subject), teachers in order:
        need = problem.classrooms[cid].needs[subject] - taken[(cid, subject)]
        if need <= 0:
            continue
        best: list[int] = []
        best_key: tuple[int, int, int] = (-1, -1, -1)
        fixed = teacher_of.get((cid, subject))
        for teacher in [fixed] if fixed is not None else sorted(teachers):
            picks = _try_teacher(ledger, teachers[teacher], need)
            if not picks:
                continue
            partner = int(st.cands[picks[0]].partner)
            key = (len(picks), partner, -len(ledger.teacher_rooms[teacher]))
            if key > best_key:
                best, best_key = picks, key
        for i in best:
            ledger.add(i)
    return sorted(ledger.chosen)


def _try_teacher(ledger: Ledger, members: list[int], need: int) -> list[int]:
    """Pick up to `need` of one teacher's classes for a classroom-subject, tentatively."""
    st = ledger.st
    picked: list[int] = []
    added: list[int] = []
    for i in sorted(members, key=lambda i: (st.cands[i].deviation, st.cands[i].weekday, st.cands[i].start)):
        if len(picked) >= need:
            break
        if ledger.fits(i):
            ledger.add(i)
            added.append(i)
            picked.append(i)
    for i in added:  # undo: the caller adds the best teacher's picks for real
        _remove(ledger, i)
    return picked


def _remove(ledger: Ledger, i: int) -> None:
    c = ledger.st.cands[i]
    ledger.chosen.discard(i)
    for g in ledger.groups_of[i]:
        ledger.count[g] -= 1
    ledger.used_classes[c.cls] -= 1
    if ledger.used_classes[c.cls] == 0:
        for u in ledger.urban_of[c.cls]:
            ledger.urban_count[u] -= 1
    ledger.room_teacher_uses[(c.classroom, c.teacher)] -= 1
    if ledger.room_teacher_uses[(c.classroom, c.teacher)] == 0:
        ledger.teacher_rooms[c.teacher].discard(c.classroom)


def lp_round(st: Structure, values: list[float]) -> list[int]:
    """Round an LP solution: take candidates by falling LP value while every limit holds and each
    classroom-subject stays with the teacher of its first pick."""
    ledger = Ledger(st)
    problem = st.problem
    teacher_of: dict[tuple[str, str], str] = {}
    taken: dict[tuple[str, str], int] = defaultdict(int)
    order = sorted(range(len(st.cands)), key=lambda i: (-values[i], st.cands[i].deviation, i))
    for i in order:
        if values[i] <= 1e-6:
            break
        c = st.cands[i]
        key = (c.classroom, c.subject)
        full = taken[key] >= problem.classrooms[c.classroom].needs[c.subject]
        if full or teacher_of.get(key, c.teacher) != c.teacher:
            continue
        if ledger.fits(i):
            ledger.add(i)
            teacher_of[key] = c.teacher
            taken[key] += 1
    # then fill what is left greedily, teacher by teacher
    for key, teachers in st.continuity.items():
        need = problem.classrooms[key[0]].needs[key[1]] - taken[key]
        names = [teacher_of[key]] if key in teacher_of else sorted(teachers)
        for teacher in names:
            if need <= 0:
                break
            picks = _try_teacher(ledger, teachers[teacher], need)
            if picks:
                for i in picks:
                    ledger.add(i)
                teacher_of[key] = teacher
                need -= len(picks)
                break
    return sorted(ledger.chosen)
