"""Builders for small hand-made scheduling instances (JSON input format)."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from scheduler.inputs import build_problem
from scheduler.io_json import tables_from_json
from scheduler.model import Problem

EXAMPLES = Path(__file__).resolve().parents[2] / "scheduler" / "examples"
PERIODS = [(1, "08:00", "08:40"), (2, "08:50", "09:30"), (3, "10:00", "10:40"), (4, "10:50", "11:30")]


class Instance:
    """A tiny county: urban school U (teachers), rural schools R1, R2 (classrooms); 4 periods x 5 days."""

    def __init__(self) -> None:
        self.data: dict[str, Any] = {
            "settings": {"term_start": "2025-09-01", "term_end": "2025-10-31", "tolerance_min": 5,
                         "holidays": ["2025-10-01"]},
            "schools": [
                {"id": "U", "name": "城区小学", "county": "A县", "kind": "urban"},
                {"id": "R1", "name": "一村小", "county": "A县", "kind": "rural"},
                {"id": "R2", "name": "二村小", "county": "A县", "kind": "rural"},
            ],
            "bells": [{"school": s, "weekdays": "1-5", "period": n, "start": a, "end": b}
                      for s in ("U", "R1", "R2") for n, a, b in PERIODS],
            "classrooms": [], "busy": [], "teachers": [], "classes": [], "partnerships": [],
        }

    def room(self, cid: str, school: str = "R1", grades: str = "3", **needs: int) -> Instance:
        self.data["classrooms"].append({"id": cid, "name": f"{cid} 教室", "school": school, "grades": grades,
                                        "needs": {_subject(k): v for k, v in needs.items()}})
        return self

    def teacher(self, tid: str, cap: int | None = None, school: str = "U") -> Instance:
        t: dict[str, Any] = {"id": tid, "name": f"{tid}老师", "school": school}
        if cap is not None:
            t["max_classrooms"] = cap
        self.data["teachers"].append(t)
        return self

    def cls(self, kid: str, teacher: str, subject: str = "en", grade: int = 3, day: int = 1, period: int = 1,
            capacity: int | None = None, start: str | None = None, end: str | None = None) -> Instance:
        _, a, b = PERIODS[period - 1]
        k: dict[str, Any] = {"id": kid, "teacher": teacher, "subject": _subject(subject), "grade": grade,
                             "weekday": day, "start": start or a, "end": end or b}
        if capacity is not None:
            k["capacity"] = capacity
        self.data["classes"].append(k)
        return self

    def busy(self, cid: str, day: int, periods: str) -> Instance:
        self.data["busy"].append({"classroom": cid, "weekday": day, "periods": periods})
        return self

    def link(self, school: str, n: int) -> Instance:
        for s in self.data["schools"]:
            if s["id"] == school:
                s["link_capacity"] = n
        return self

    def partner(self, urban: str, rural: str) -> Instance:
        self.data["partnerships"].append({"urban_school": urban, "rural_school": rural})
        return self

    def problem(self) -> Problem:
        return build_problem(tables_from_json(copy.deepcopy(self.data), "test.json"))

    def write(self, path: Path) -> Path:
        path.write_text(json.dumps(self.data, ensure_ascii=False), encoding="utf-8")
        return path


def _subject(key: str) -> str:
    return {"en": "英语", "mu": "音乐", "art": "美术", "sci": "科学"}.get(key, key)


@pytest.fixture
def inst() -> Callable[[], Instance]:
    return Instance


@pytest.fixture
def example_json() -> Path:
    return EXAMPLES / "small.json"


@pytest.fixture
def example_csv() -> Path:
    return EXAMPLES / "csv"
