"""The input as tables of rows, each remembering its file and row, before validation.

JSON and CSV inputs both become `Tables`; `scheduler.inputs` turns them into a `Problem`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# table name -> (columns, required columns). The CSV files are named `<table>.csv`.
TABLES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "schools": (("id", "name", "county", "kind", "link_capacity"), ("id", "county", "kind")),
    "bells": (("school", "weekdays", "period", "start", "end"), ("school", "weekdays", "period", "start", "end")),
    "classrooms": (("id", "name", "school", "grades"), ("id", "school", "grades")),
    "needs": (("classroom", "subject", "periods"), ("classroom", "subject", "periods")),
    "busy": (("classroom", "weekday", "periods"), ("classroom", "weekday", "periods")),
    "teachers": (("id", "name", "school", "max_classrooms"), ("id", "school")),
    "classes": (
        ("id", "teacher", "subject", "grade", "weekday", "start", "end", "capacity", "room", "kind", "listeners"),
        ("id", "teacher", "subject", "grade", "weekday", "start", "end"),
    ),
    "partnerships": (("urban_school", "rural_school"), ("urban_school", "rural_school")),
}
SETTINGS_KEYS = ("term_start", "term_end", "tolerance_min", "timezone", "holidays", "match_scope")


@dataclass
class Row:
    file: str
    row: str
    values: dict[str, Any]


@dataclass
class Tables:
    settings: Row
    tables: dict[str, list[Row]] = field(default_factory=dict)
    settings_rows: dict[str, str] = field(default_factory=dict)  # key -> row label (CSV settings)

    def rows(self, name: str) -> list[Row]:
        return self.tables.get(name, [])
