"""The CSV input format: one file per table in a directory, filled in a spreadsheet.

Row numbers in errors are spreadsheet line numbers (the header is line 1).
`settings.csv` has two columns, `key,value`.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

from scheduler.errors import InputError, InputIssue
from scheduler.tables import SETTINGS_KEYS, TABLES, Row, Tables

REQUIRED_FILES = ("settings", "schools", "bells", "classrooms", "needs", "teachers", "classes")


def _read_csv(path: Path, columns: tuple[str, ...], issues: list[InputIssue]) -> list[Row]:
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        issues.append(InputIssue(path.name, "-", "-", "not UTF-8 text (save the sheet as 'CSV UTF-8')"))
        return []
    return parse_csv(path.name, text, columns, issues)


def parse_csv(name: str, text: str, columns: tuple[str, ...], issues: list[InputIssue]) -> list[Row]:
    """The rows of one CSV table `name` (its text, decoded); problems are added to `issues`."""
    reader = csv.reader(io.StringIO(text.removeprefix("\ufeff")))
    header: list[str] | None = None
    rows: list[Row] = []
    for record in reader:
        line = str(reader.line_num)
        if header is None:
            header = [h.strip() for h in record]
            for h in header:
                if h and h not in columns:
                    issues.append(InputIssue(name, line, h,
                                             f"unknown column (expected {', '.join(columns)})"))
            continue
        if not any(c.strip() for c in record):
            continue
        if len(record) > len(header) and any(c.strip() for c in record[len(header):]):
            issues.append(InputIssue(name, line, "-", f"{len(record)} cells but {len(header)} columns"))
            continue
        values: dict[str, Any] = {h: (record[i].strip() if i < len(record) else "")
                                  for i, h in enumerate(header) if h}
        rows.append(Row(name, line, values))
    return rows


def read_tables(directory: Path) -> Tables:
    issues: list[InputIssue] = []
    for name in REQUIRED_FILES:
        if not (directory / f"{name}.csv").exists():
            issues.append(InputIssue(f"{name}.csv", "-", "-", f"file missing in {directory}"))
    if issues:
        raise InputError(issues)
    settings_rows = _read_csv(directory / "settings.csv", ("key", "value"), issues)
    values: dict[str, Any] = {}
    labels: dict[str, str] = {}
    for r in settings_rows:
        key = str(r.values.get("key", "")).strip()
        if key not in SETTINGS_KEYS:
            issues.append(InputIssue("settings.csv", r.row, "key", f"unknown setting {key!r}"))
            continue
        values[key] = r.values.get("value", "")
        labels[key] = r.row
    tables = Tables(settings=Row("settings.csv", "-", values), settings_rows=labels)
    for name, (columns, _) in TABLES.items():
        path = directory / f"{name}.csv"
        tables.tables[name] = _read_csv(path, columns, issues) if path.exists() else []
    if issues:
        raise InputError(issues)
    return tables


def write_tables(data: dict[str, Any], directory: Path) -> None:
    """Write JSON-format input as CSV files (inline classroom needs become rows of needs.csv)."""
    directory.mkdir(parents=True, exist_ok=True)
    settings = data.get("settings", {})
    with open(directory / "settings.csv", "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["key", "value"])
        for key in SETTINGS_KEYS:
            if key in settings:
                v = settings[key]
                w.writerow([key, ";".join(v) if isinstance(v, list) else v])
    needs = list(data.get("needs", []))
    for room in data.get("classrooms", []):
        for subject, n in (room.get("needs") or {}).items():
            needs.append({"classroom": room["id"], "subject": subject, "periods": n})
    for name, (columns, _) in TABLES.items():
        rows = needs if name == "needs" else data.get(name, [])
        with open(directory / f"{name}.csv", "w", newline="", encoding="utf-8") as f:
            w = csv.writer(f)
            w.writerow(columns)
            for r in rows:
                w.writerow([_cell(r.get(c)) for c in columns])


def _cell(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, list):
        return ",".join(str(x) for x in v)
    return str(v)
