"""Realistic random instances (counties, urban and rural schools, bell schedules, needs, master
classes) in the JSON input format, for the scale bench and for tests. Deterministic from the seed.

How a province is made up (the assumptions, also listed in `bench/scheduler_scale.py`):

- Rural schools go round-robin to counties; 40 % are teaching points (教学点: one or two classrooms,
  often combined grades such as 1-2), the rest small village schools (3–6 classrooms). Needs per
  classroom: English 2–3 periods from grade 3 up, music and art 1–2, science 1–2 (60 % of classrooms).
- Bells: the county's urban schools ring 08:00 + 40-minute periods (5 x 7). Most rural schools ring
  the same or up to 5 minutes off (within the default tolerance); 5 % run 45-minute periods (they
  drift out of step from the third period) and 5 % start the afternoon 15 minutes late.
- The county bureau plans master classes to cover its rural needs: for each subject it sets a
  supply factor (seats x periods / demand) — English 1.10–1.30, science 1.00–1.20, music and art
  0.90–1.10 (often short) — and its master teachers of that subject split the grades into bands.
  Each classroom-subject (in random order, until the factor's share of demand is placed) is
  planned with the least-loaded teacher of one of its grades: it takes seats in that teacher's
  classes on distinct days, a new class (capacity 3–6, at a free slot of the teacher) being opened
  when none has a seat. Surplus seats go into extra classes at random slots.
- Rural timetables are built around the plan: a planned slot is left free of local lessons with
  probability 0.9 (else a local lesson clashes), and 3–8 further periods a week are free at random.
- Teachers' weekly caps on distinct classrooms are 0.9–1.3 x the classrooms planned with them (so
  they bind sometimes). Links: teaching points carry 1 remote lesson at once, village schools 2–3
  (binding when planned slots pile up); an urban school's link is its busiest moment's planned
  class count, one less at 40 % of the schools.
- Each rural school has one partner (结对) urban school in its county; planned classes prefer a
  partner's teacher on ties.
"""

from __future__ import annotations

import math
import random
from collections import defaultdict
from typing import Any

# subject: (periods per week a classroom needs, lowest grade, supply factor range, share of rooms)
SUBJECTS: dict[str, tuple[tuple[int, ...], int, tuple[float, float], float]] = {
    "英语": ((2, 2, 2, 3), 3, (1.10, 1.30), 1.0),
    "音乐": ((1, 1, 2), 1, (0.85, 1.00), 1.0),
    "美术": ((1, 1, 2), 1, (0.85, 1.00), 1.0),
    "科学": ((1, 2), 1, (1.00, 1.20), 0.6),
}
CAPACITIES = (3, 3, 4, 4, 5, 6)
PLANNED_SLOT_FREE = 0.9


def _fmt(m: int) -> str:
    return f"{m // 60:02d}:{m % 60:02d}"


def _bells(offset: int, length: int, periods: int, afternoon_delay: int = 0) -> list[tuple[int, int, int]]:
    """(number, start, end) per period: mornings from 08:00, afternoons from 14:00."""
    out = []
    morning = (periods + 1) // 2 + (1 if periods >= 7 else 0)
    t = 8 * 60 + offset
    for n in range(1, periods + 1):
        if n == morning + 1:
            t = 14 * 60 + offset + afternoon_delay
        out.append((n, t, t + length))
        t += length + (20 if n == 2 else 10)
    return out


class _Teacher:
    def __init__(self, tid: str, subject: str, grades: list[int], school: str, slots: list[tuple[int, int]]) -> None:
        self.id, self.subject, self.grades, self.school = tid, subject, grades, school
        self.free_slots = slots  # (day, period) not yet used, in random order
        self.classes: list[dict[str, Any]] = []
        self.rooms: set[str] = set()


def generate(seed: int = 1, classrooms: int = 2000, teachers: int = 300, counties: int = 20,
             days: int = 5, periods: int = 7, match_scope: str = "county") -> dict[str, Any]:
    rng = random.Random(seed)
    data: dict[str, Any] = {
        "settings": {"term_start": "2025-09-01", "term_end": "2026-01-16", "tolerance_min": 5,
                     "timezone": "Asia/Shanghai", "holidays": ["2025-10-01", "2025-10-02", "2025-10-03"],
                     "match_scope": match_scope},
        "schools": [], "bells": [], "classrooms": [], "busy": [], "teachers": [], "classes": [],
        "partnerships": [],
    }
    weekdays = f"1-{days}"
    urban_bells = _bells(0, 40, periods)
    urban_by_county: dict[int, list[str]] = {}
    urban_schools: list[dict[str, Any]] = []
    for c in range(counties):
        county = f"县{c + 1:02d}"
        urban_by_county[c] = []
        for j in range(2):
            sid = f"u{c + 1:02d}-{j + 1}"
            urban_by_county[c].append(sid)
            urban: dict[str, Any] = {"id": sid, "name": f"{county}城区第{j + 1}小学", "county": county,
                                     "kind": "urban", "link_capacity": None}
            urban_schools.append(urban)
            data["schools"].append(urban)
            for n, begin, end in urban_bells:
                data["bells"].append({"school": sid, "weekdays": weekdays, "period": n, "start": _fmt(begin),
                                      "end": _fmt(end)})

    # rural schools, classrooms and needs
    rooms: list[dict[str, Any]] = []  # classroom json + private planning fields
    partner_of: dict[str, str] = {}
    made = 0
    school_no = 0
    while made < classrooms:
        c = school_no % counties
        county = f"县{c + 1:02d}"
        school_no += 1
        sid = f"r{school_no:04d}"
        point = rng.random() < 0.4
        groups: list[tuple[int, ...]]
        if point:  # teaching point: one or two classrooms, combined grades
            groups = rng.choice([[(1, 2)], [(1, 2), (3, 4)], [(1, 3)], [(1,)], [(2, 3)]])
        else:  # small village school
            groups = rng.choice([[(1,), (2,), (3,), (4,), (5,), (6,)], [(1, 2), (3, 4), (5, 6)],
                                 [(1,), (2,), (3, 4), (5, 6)], [(3,), (4,), (5,), (6,)]])
        groups = groups[: classrooms - made]
        data["schools"].append({"id": sid, "name": f"{county}{'教学点' if point else '村小'}{school_no}",
                                "county": county, "kind": "rural",
                                "link_capacity": 1 if point else rng.choice([2, 2, 3])})
        partner_of[sid] = rng.choice(urban_by_county[c])
        data["partnerships"].append({"urban_school": partner_of[sid], "rural_school": sid})
        kind = rng.random()
        if kind < 0.05:
            bells = _bells(0, 45, periods)
        elif kind < 0.10:
            bells = _bells(0, 40, periods, afternoon_delay=15)
        else:
            bells = _bells(rng.choice([-5, 0, 0, 0, 0, 5]), 40, periods)
        for n, begin, end in bells:
            data["bells"].append({"school": sid, "weekdays": weekdays, "period": n, "start": _fmt(begin),
                                  "end": _fmt(end)})
        for grades in groups:
            cid = f"{sid}-g{''.join(map(str, grades))}"
            needs = {}
            for subject, (choices, low, _, share) in SUBJECTS.items():
                if max(grades) < low or rng.random() >= share:
                    continue
                needs[subject] = rng.choice(choices)
            grade_txt = f"{grades[0]}-{grades[-1]}" if len(grades) > 1 else str(grades[0])
            rooms.append({"id": cid, "school": sid, "county": c, "grades": list(range(grades[0], grades[-1] + 1)),
                          "needs": needs, "planned": set()})
            data["classrooms"].append({"id": cid, "name": f"{sid} {grade_txt}年级", "school": sid,
                                       "grades": grade_txt, "needs": needs})
            made += 1

    # the bureau's plan, county by county
    demand: dict[int, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for r in rooms:
        for s, n in r["needs"].items():
            demand[r["county"]][s] += n
    county_teachers = _apportion({c: sum(demand[c].values()) for c in range(counties)}, teachers)
    all_slots = [(d, n) for d in range(1, days + 1) for n in range(1, periods + 1)]
    t_no = 0
    k_no = 0
    planned_classes: list[tuple[_Teacher, dict[str, Any]]] = []
    for c in range(counties):
        county_rooms = [r for r in rooms if r["county"] == c]
        factors = {s: rng.uniform(*SUBJECTS[s][2]) for s in SUBJECTS}
        per_subject = _apportion({s: demand[c][s] * factors[s] for s in SUBJECTS if demand[c][s]},
                                 county_teachers.get(c, 0), minimum=1)
        staff: dict[str, list[_Teacher]] = {}
        for s, count in per_subject.items():
            low = SUBJECTS[s][1]
            grade_list = list(range(low, 7))
            staff[s] = []
            for j in range(count):
                t_no += 1
                if count >= len(grade_list):
                    band = [grade_list[j % len(grade_list)]]
                else:
                    a, b = j * len(grade_list) // count, (j + 1) * len(grade_list) // count
                    band = grade_list[a:b]
                home = rng.choice(urban_by_county[c])
                staff[s].append(_Teacher(f"t{t_no:03d}", s, band, home, rng.sample(all_slots, len(all_slots))))
        for s, team in staff.items():
            work = [(r, r["needs"][s]) for r in county_rooms if s in r["needs"]]
            rng.shuffle(work)
            budget = demand[c][s] * min(1.0, factors[s])
            placed = 0
            for r, need in work:
                if placed + need > budget + 0.5:
                    continue
                options = [t for t in team if set(t.grades) & set(r["grades"])]
                if not options:
                    continue
                load = min(len(t.classes) for t in options)
                best = [t for t in options if len(t.classes) <= load + 1]
                best.sort(key=lambda t: (t.school != partner_of[r["school"]], len(t.classes)))
                teacher = best[0]
                grade = rng.choice([g for g in r["grades"] if g in teacher.grades])
                k_no = _plan_room(rng, teacher, r, grade, need, days, k_no)
                placed += need
            surplus = demand[c][s] * factors[s] - sum(k["capacity"] for t in team for k in t.classes)
            while surplus > 0 and team:
                teacher = rng.choice(team)
                if not teacher.free_slots:
                    break
                cap = rng.choice(CAPACITIES)
                k_no = _open_class(teacher, rng.choice(teacher.grades), cap, k_no)
                surplus -= cap
            for t in team:
                planned_classes += [(t, k) for k in t.classes]
                data["teachers"].append({
                    "id": t.id, "name": f"名师{t.id[1:]}", "school": t.school,
                    "max_classrooms": max(1, math.ceil(len(t.rooms) * rng.uniform(0.9, 1.3))) if t.rooms else 4,
                })
    for t, k in planned_classes:
        _, begin, end = urban_bells[k["period"] - 1]
        data["classes"].append({"id": k["id"], "teacher": t.id, "subject": t.subject, "grade": k["grade"],
                                "weekday": k["weekday"], "start": _fmt(begin), "end": _fmt(end),
                                "capacity": k["capacity"]})

    # urban links: the busiest moment of planned classes, one less at some schools
    busy_at: dict[str, dict[tuple[int, int], int]] = defaultdict(lambda: defaultdict(int))
    for t, k in planned_classes:
        busy_at[t.school][(k["weekday"], k["period"])] += 1
    for urban in urban_schools:
        peak = max(busy_at[urban["id"]].values(), default=1)
        urban["link_capacity"] = max(1, peak - (1 if rng.random() < 0.4 else 0))

    # rural timetables around the plan
    for r in rooms:
        free = {slot for slot in r["planned"] if rng.random() < PLANNED_SLOT_FREE}
        extra = [slot for slot in all_slots if slot not in r["planned"]]
        free |= set(rng.sample(extra, min(len(extra), rng.randint(3, 8))))
        for d in range(1, days + 1):
            busy = [n for n in range(1, periods + 1) if (d, n) not in free]
            if busy:
                data["busy"].append({"classroom": r["id"], "weekday": d, "periods": ",".join(map(str, busy))})
    return data


def _apportion(weights: dict[Any, float], total: int, minimum: int = 0) -> dict[Any, int]:
    """Largest-remainder split of `total` in proportion to the weights (each at least `minimum`)."""
    keys = sorted(weights, key=str)
    if not keys:
        return {}
    out = {k: minimum for k in keys}
    rest = total - minimum * len(keys)
    w = sum(weights.values()) or 1.0
    if rest <= 0:
        return out
    exact = {k: rest * weights[k] / w for k in keys}
    for k in keys:
        out[k] += int(exact[k])
    left = rest - sum(int(exact[k]) for k in keys)
    for k in sorted(keys, key=lambda k: -(exact[k] - int(exact[k])))[:left]:
        out[k] += 1
    return out


def _open_class(t: _Teacher, grade: int, capacity: int, k_no: int, day: int | None = None,
                avoid: set[tuple[int, int]] | None = None) -> int:
    """A new class of the teacher at a free slot (on `day` if given, not in `avoid`)."""
    for slot in t.free_slots:
        if (day is None or slot[0] == day) and not (avoid and slot in avoid):
            t.free_slots.remove(slot)
            k_no += 1
            t.classes.append({"id": f"k{k_no:05d}", "grade": grade, "weekday": slot[0], "period": slot[1],
                              "capacity": capacity, "seats": capacity})
            return k_no
    return k_no


def _plan_room(rng: random.Random, t: _Teacher, room: dict[str, Any], grade: int, need: int, days: int,
               k_no: int) -> int:
    """Seats for one classroom-subject in the teacher's classes of that grade on distinct days."""
    used_days: set[int] = set()
    taken = room["planned"]
    got = 0
    for k in t.classes:
        if got >= need:
            break
        slot = (k["weekday"], k["period"])
        if k["grade"] == grade and k["seats"] > 0 and k["weekday"] not in used_days and slot not in taken:
            k["seats"] -= 1
            used_days.add(k["weekday"])
            taken.add(slot)
            got += 1
    day_order = rng.sample(range(1, days + 1), days)
    for day in day_order:
        if got >= need:
            break
        if day in used_days:
            continue
        before = len(t.classes)
        k_no = _open_class(t, grade, rng.choice(CAPACITIES), k_no, day=day, avoid=taken)
        if len(t.classes) == before:
            continue
        k = t.classes[-1]
        k["seats"] -= 1
        used_days.add(day)
        taken.add((k["weekday"], k["period"]))
        got += 1
    if got:
        t.rooms.add(room["id"])
    return k_no
