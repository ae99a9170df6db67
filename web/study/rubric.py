"""The evaluation rubric (评课量表) and evaluations of recordings against it.

A rubric is a list of weighted dimensions, each scored 0–100 with a note; the overall score is
the weighted mean and falls in a band (90–100 优秀, 75–89 良好, 60–74 合格, below 60 待改进).
The default dimensions are DESIGN.md's (教学目标, 教学内容, 教学方法/过程, 学生参与, 教学效果,
教师素养, 技术运用); an administrator may replace them. Each evaluation keeps a copy of the
rubric it was written against, so changing the rubric never rewrites past evaluations.
One evaluation per author and recording (saving again updates it).
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from web.study.access import Author
from web.study.db import count_by_recording, iso_utc, metadata, utcnow

_KEY_RE = re.compile(r"^[a-z][a-z0-9_]{0,31}$")
MAX_NOTE = 2000
MAX_DIMENSIONS = 12

rubrics_table = sa.Table(
    "study_rubrics",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),  # "default"
    sa.Column("definition", sa.Text, nullable=False),  # JSON
    sa.Column("updated_at", sa.DateTime, nullable=False),
    sa.Column("updated_by", sa.Text, nullable=False, default=""),
)

evaluations_table = sa.Table(
    "study_evaluations",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("recording_id", sa.String(128), nullable=False, index=True),
    sa.Column("author_key", sa.Text, nullable=False),
    sa.Column("author_name", sa.Text, nullable=False),
    sa.Column("author_role", sa.String(16), nullable=False),
    sa.Column("rubric", sa.Text, nullable=False),  # JSON: the rubric as it was
    sa.Column("scores", sa.Text, nullable=False),  # JSON: {dimension: {"score": n, "note": s}}
    sa.Column("note", sa.Text, nullable=False, default=""),
    sa.Column("total", sa.Float, nullable=False),
    sa.Column("band", sa.String(16), nullable=False),
    sa.Column("created_at", sa.DateTime, nullable=False),
    sa.Column("updated_at", sa.DateTime, nullable=False),
    sa.UniqueConstraint("recording_id", "author_key", name="uq_study_evaluation_author"),
)


class RubricError(ValueError):
    """A rubric or an evaluation that cannot be accepted (the message names the field)."""


@dataclass(frozen=True)
class Dimension:
    key: str
    name: str  # Chinese
    name_en: str
    weight: float

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class Band:
    key: str
    min_score: float
    name: str
    name_en: str

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


BANDS = (
    Band("excellent", 90, "优秀", "Excellent"),
    Band("good", 75, "良好", "Good"),
    Band("satisfactory", 60, "合格", "Satisfactory"),
    Band("improve", 0, "待改进", "Needs improvement"),
)

DEFAULT_DIMENSIONS = (
    Dimension("objectives", "教学目标", "Teaching objectives", 10),
    Dimension("content", "教学内容", "Teaching content", 15),
    Dimension("methods", "教学方法/过程", "Methods and process", 20),
    Dimension("participation", "学生参与", "Student participation (all classrooms)", 20),
    Dimension("outcomes", "教学效果", "Learning outcomes", 15),
    Dimension("teacher", "教师素养", "Teacher's competence", 10),
    Dimension("technology", "技术运用", "Use of technology", 10),
)


@dataclass
class Rubric:
    dimensions: list[Dimension] = field(default_factory=lambda: list(DEFAULT_DIMENSIONS))

    def to_json(self) -> dict[str, Any]:
        return {"dimensions": [d.to_json() for d in self.dimensions], "bands": [b.to_json() for b in BANDS],
                "scale": [0, 100]}

    @classmethod
    def from_json(cls, data: Any) -> Rubric:
        if not isinstance(data, dict) or not isinstance(data.get("dimensions"), list):
            raise RubricError("dimensions: a list of {key, name, name_en, weight}")
        dims = []
        for i, d in enumerate(data["dimensions"]):
            where = f"dimensions[{i}]"
            if not isinstance(d, dict):
                raise RubricError(f"{where}: must be an object")
            key, name = d.get("key"), d.get("name")
            if not isinstance(key, str) or not _KEY_RE.match(key):
                raise RubricError(f"{where}.key: lower-case letters, digits and '_' (up to 32)")
            if not isinstance(name, str) or not name.strip() or len(name) > 60:
                raise RubricError(f"{where}.name: 1–60 characters")
            weight = d.get("weight")
            if isinstance(weight, bool) or not isinstance(weight, int | float) or not 0 < weight <= 1000:
                raise RubricError(f"{where}.weight: a number above 0")
            dims.append(Dimension(key, name.strip(), str(d.get("name_en") or name).strip()[:60], float(weight)))
        if not 1 <= len(dims) <= MAX_DIMENSIONS:
            raise RubricError(f"dimensions: 1 to {MAX_DIMENSIONS}")
        if len({d.key for d in dims}) != len(dims):
            raise RubricError("dimensions: keys must be unique")
        return cls(dims)

    def band(self, total: float) -> Band:
        return next(b for b in BANDS if total >= b.min_score)

    def score(self, scores: Any) -> tuple[dict[str, dict[str, Any]], float]:
        """Check a full set of scores; returns them cleaned and the weighted total (0–100)."""
        if not isinstance(scores, dict):
            raise RubricError("scores: an object {dimension: {score, note}}")
        clean: dict[str, dict[str, Any]] = {}
        for d in self.dimensions:
            item = scores.get(d.key)
            if isinstance(item, int | float) and not isinstance(item, bool):
                item = {"score": item}
            if not isinstance(item, dict):
                raise RubricError(f"scores.{d.key}: missing ({d.name})")
            value, note = item.get("score"), item.get("note", "")
            if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) \
                    or not 0 <= value <= 100:
                raise RubricError(f"scores.{d.key}.score: 0 to 100 ({d.name})")
            if not isinstance(note, str) or len(note) > MAX_NOTE:
                raise RubricError(f"scores.{d.key}.note: text up to {MAX_NOTE} characters")
            clean[d.key] = {"score": float(value), "note": note.strip()}
        unknown = set(scores) - set(clean)
        if unknown:
            raise RubricError(f"scores: unknown dimension {sorted(unknown)[0]!r}")
        weights = sum(d.weight for d in self.dimensions)
        total = sum(d.weight * clean[d.key]["score"] for d in self.dimensions) / weights
        return clean, round(total, 1)


class RubricStore:
    """The configured rubric and the evaluations."""

    def __init__(self, engine: sa.Engine) -> None:
        self._engine = engine
        metadata.create_all(engine)

    def rubric(self) -> Rubric:
        with self._engine.connect() as conn:
            row = conn.execute(rubrics_table.select().where(rubrics_table.c.id == "default")).first()
        return Rubric.from_json(json.loads(row._mapping["definition"])) if row is not None else Rubric()

    def set_rubric(self, data: Any, by: str) -> Rubric:
        rubric = Rubric.from_json(data)
        values = {"definition": json.dumps(rubric.to_json(), ensure_ascii=False), "updated_at": utcnow(),
                  "updated_by": by}
        t = rubrics_table
        with self._engine.begin() as conn:
            if not conn.execute(t.update().where(t.c.id == "default").values(**values)).rowcount:
                conn.execute(t.insert().values(id="default", **values))
        return rubric

    def save(self, recording_id: str, author: Author, scores: Any, note: Any = "") -> dict[str, Any]:
        rubric = self.rubric()
        clean, total = rubric.score(scores)
        if not isinstance(note, str) or len(note) > MAX_NOTE:
            raise RubricError(f"note: text up to {MAX_NOTE} characters")
        now = utcnow()
        values = {"author_name": author.name, "author_role": author.role,
                  "rubric": json.dumps(rubric.to_json(), ensure_ascii=False),
                  "scores": json.dumps(clean, ensure_ascii=False), "note": note.strip(), "total": total,
                  "band": rubric.band(total).key, "updated_at": now}
        t = evaluations_table
        where = (t.c.recording_id == recording_id) & (t.c.author_key == author.key)
        with self._engine.begin() as conn:
            if not conn.execute(t.update().where(where).values(**values)).rowcount:
                conn.execute(t.insert().values(recording_id=recording_id, author_key=author.key, created_at=now,
                                               **values))
            row = conn.execute(t.select().where(where)).one()
        return _evaluation_json(row, author.key)

    def list(self, recording_id: str, viewer_key: str | None = None) -> list[dict[str, Any]]:
        t = evaluations_table
        q = t.select().where(t.c.recording_id == recording_id).order_by(t.c.created_at)
        with self._engine.connect() as conn:
            return [_evaluation_json(r, viewer_key) for r in conn.execute(q)]

    def counts(self, recording_ids: Iterable[str] | None = None) -> Counter[str]:
        t = evaluations_table
        q = sa.select(t.c.recording_id, sa.func.count()).group_by(t.c.recording_id)
        return count_by_recording(self._engine, q, t.c.recording_id, recording_ids)


def _evaluation_json(row: sa.Row, viewer_key: str | None) -> dict[str, Any]:
    m = row._mapping
    band = next((b for b in BANDS if b.key == m["band"]), BANDS[-1])
    return {
        "id": m["id"],
        "recording": m["recording_id"],
        "author": {"name": m["author_name"], "role": m["author_role"]},
        "mine": viewer_key == m["author_key"],
        "rubric": json.loads(m["rubric"]),
        "scores": json.loads(m["scores"]),
        "note": m["note"],
        "total": m["total"],
        "band": band.to_json(),
        "created_at": iso_utc(m["created_at"]),
        "updated_at": iso_utc(m["updated_at"]),
    }


def summary(evaluations: list[dict[str, Any]]) -> dict[str, Any] | None:
    """Mean per dimension and overall across evaluations (the report's rubric table)."""
    if not evaluations:
        return None
    per: dict[str, list[float]] = {}
    for e in evaluations:
        for key, item in e["scores"].items():
            per.setdefault(key, []).append(float(item["score"]))
    mean_total = sum(e["total"] for e in evaluations) / len(evaluations)
    band = next(b for b in BANDS if mean_total >= b.min_score)
    return {"count": len(evaluations), "total": round(mean_total, 1), "band": band.to_json(),
            "dimensions": {k: round(sum(v) / len(v), 1) for k, v in per.items()}}
