"""Schools and classrooms of the bureau, kept in the lesson server's database.

The CSV format is the timetable input's (`scheduler/examples/csv`): ``schools.csv`` with
``id,name,county,kind,link_capacity`` and ``classrooms.csv`` with ``id,name,school,grades``. A
classroom's role follows its school's kind: an urban school's classrooms are master classrooms
(主讲教室), a rural school's are rural classrooms (听讲教室). An import is validated whole by the
scheduler's own checks (`scheduler.inputs.read_directory`) and written in one transaction:
a bad row names its file, row and field, and nothing is written.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from scheduler.errors import InputError, InputIssue
from scheduler.inputs import read_directory
from scheduler.io_csv import parse_csv
from scheduler.model import School
from scheduler.tables import TABLES, Row, Tables

metadata = sa.MetaData()
CSV_TABLES = ("schools", "classrooms")

schools_table = sa.Table(
    "admin_schools", metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("county", sa.Text, nullable=False),
    sa.Column("kind", sa.String(16), nullable=False),  # urban | rural
    sa.Column("link_capacity", sa.Integer, nullable=True),
)

classrooms_table = sa.Table(
    "admin_classrooms", metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("school", sa.String(64), nullable=False, index=True),
    sa.Column("grades", sa.Text, nullable=False),  # "3", "1-2", "1,3"
)


@dataclass(frozen=True)
class Place:
    """One classroom with its school: what the console lists and lessons are made of."""

    id: str
    name: str
    school: str
    school_name: str
    county: str
    role: str  # "master" (urban school) | "rural"
    grades: str

    def to_json(self) -> dict[str, str]:
        return dict(self.__dict__)


def grades_text(grades: frozenset[int] | list[int]) -> str:
    """[1, 2, 3, 5] -> "1-3,5" (what parse_set reads back)."""
    out: list[str] = []
    items = sorted(grades)
    i = 0
    while i < len(items):
        j = i
        while j + 1 < len(items) and items[j + 1] == items[j] + 1:
            j += 1
        out.append(str(items[i]) if i == j else f"{items[i]}-{items[j]}")
        i = j + 1
    return ",".join(out)


class SchoolDirectory:
    """The schools and classrooms table; synchronous (routes call it through asyncio.to_thread)."""

    def __init__(self, engine: sa.Engine) -> None:
        self._engine = engine
        metadata.create_all(engine)

    def schools(self) -> dict[str, School]:
        with self._engine.connect() as conn:
            rows = conn.execute(schools_table.select().order_by(schools_table.c.county, schools_table.c.id))
            return {r.id: School(r.id, r.name, r.county, r.kind, r.link_capacity) for r in rows}

    def places(self) -> list[Place]:
        """Every classroom with its school, by county, school and classroom."""
        schools = self.schools()
        with self._engine.connect() as conn:
            rows = list(conn.execute(classrooms_table.select()))
        out = []
        for r in rows:
            s = schools.get(r.school)
            out.append(Place(r.id, r.name, r.school, s.name if s else r.school, s.county if s else "",
                             "master" if s and s.kind == "urban" else "rural", r.grades))
        return sorted(out, key=lambda p: (p.county, p.school, p.id))

    def import_csv(self, files: dict[str, str]) -> dict[str, int]:
        """Add or replace the schools and classrooms of `files` ({"schools": text, "classrooms":
        text}, either may be missing): all or nothing. Raises InputError naming file, row and field."""
        unknown = sorted(set(files) - set(CSV_TABLES))
        if unknown:
            raise InputError([InputIssue(f"{unknown[0]}.csv", "-", "-", "not a directory table (schools, classrooms)")])
        issues: list[InputIssue] = []
        tables = Tables(settings=Row("settings.csv", "-", {}))
        for name in CSV_TABLES:
            text = files.get(name)
            tables.tables[name] = parse_csv(f"{name}.csv", text, TABLES[name][0], issues) if text else []
        if issues:
            raise InputError(issues)
        if not any(tables.tables.values()):
            raise InputError([InputIssue("schools.csv", "-", "-", "no rows: give schools.csv and/or classrooms.csv")])
        schools, classrooms = read_directory(tables, self.schools())
        with self._engine.begin() as conn:
            for s in schools.values():
                conn.execute(schools_table.delete().where(schools_table.c.id == s.id))
                conn.execute(schools_table.insert().values(id=s.id, name=s.name, county=s.county, kind=s.kind,
                                                           link_capacity=s.link_capacity))
            for c in classrooms.values():
                conn.execute(classrooms_table.delete().where(classrooms_table.c.id == c.id))
                conn.execute(classrooms_table.insert().values(id=c.id, name=c.name, school=c.school,
                                                              grades=grades_text(c.grades)))
        return {"schools": len(schools), "classrooms": len(classrooms)}

    def export_csv(self, table: str, kind: str = "", school: str = "") -> str:
        """`schools.csv` or `classrooms.csv` in the timetable input's format; `kind` "rural" or
        "urban" keeps only that kind's schools (and their classrooms), `school` (an id or a name)
        only that school's. The timetable's own
        classrooms.csv lists rural classrooms only (master rooms are the `room` of classes.csv):
        `kind="rural"` is the file `twinclass schedule solve` accepts."""
        columns = TABLES[table][0]
        out = io.StringIO()
        w = csv.writer(out, lineterminator="\n")
        w.writerow(columns)
        with self._engine.connect() as conn:
            kinds = {r.id: r.kind for r in conn.execute(schools_table.select())
                     if school in ("", r.id, r.name)}
            if table == "schools":
                for r in conn.execute(schools_table.select().order_by(schools_table.c.id)):
                    if r.id in kinds and kind in ("", r.kind):
                        w.writerow([r.id, r.name, r.county, r.kind, "" if r.link_capacity is None else r.link_capacity])
            else:
                for r in conn.execute(classrooms_table.select().order_by(classrooms_table.c.id)):
                    if (not school or r.school in kinds) and kind in ("", kinds.get(r.school)):
                        w.writerow([r.id, r.name, r.school, r.grades])
        return out.getvalue()

    def to_json(self) -> dict[str, Any]:
        return {"schools": [dict(s.__dict__) for s in self.schools().values()],
                "classrooms": [p.to_json() for p in self.places()]}
