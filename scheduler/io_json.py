"""The JSON input format: the same tables as the CSV files, as lists of objects.

A classroom object may carry its needs inline (`"needs": {"英语": 2}`) instead of rows in `needs`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from scheduler.errors import InputError, InputIssue
from scheduler.tables import SETTINGS_KEYS, TABLES, Row, Tables


def read_tables(path: Path) -> Tables:
    try:
        data = json.loads(path.read_text(encoding="utf-8-sig"))
    except json.JSONDecodeError as exc:
        raise InputError([InputIssue(path.name, str(exc.lineno), "-", f"not valid JSON: {exc.msg}")]) from exc
    except OSError as exc:
        raise InputError([InputIssue(path.name, "-", "-", f"cannot read: {exc.strerror}")]) from exc
    return tables_from_json(data, path.name)


def tables_from_json(data: Any, file: str = "input.json") -> Tables:
    issues: list[InputIssue] = []
    if not isinstance(data, dict):
        raise InputError([InputIssue(file, "-", "-", "the input must be a JSON object")])
    for key in data:
        if key not in TABLES and key != "settings":
            issues.append(InputIssue(file, key, "-", f"unknown section {key!r}"))
    settings = data.get("settings", {})
    if not isinstance(settings, dict):
        issues.append(InputIssue(file, "settings", "-", "must be an object"))
        settings = {}
    for key in settings:
        if key not in SETTINGS_KEYS:
            issues.append(InputIssue(file, "settings", key, "unknown setting"))
    tables = Tables(settings=Row(file, "settings", dict(settings)))
    for name, (columns, _) in TABLES.items():
        raw = data.get(name, [])
        if not isinstance(raw, list):
            issues.append(InputIssue(file, name, "-", "must be a list of objects"))
            continue
        rows = tables.tables.setdefault(name, [])
        for i, item in enumerate(raw):
            label = f"{name}[{i}]"
            if not isinstance(item, dict):
                issues.append(InputIssue(file, label, "-", "must be an object"))
                continue
            values = dict(item)
            if name == "classrooms" and "needs" in values:
                inline = values.pop("needs")
                if not isinstance(inline, dict):
                    issues.append(InputIssue(file, label, "needs", "must be an object {subject: periods}"))
                else:
                    for subject, n in inline.items():
                        tables.tables.setdefault("needs", []).append(
                            Row(file, f"{label}.needs.{subject}", {
                                "classroom": values.get("id"), "subject": subject, "periods": n,
                            })
                        )
            for key in values:
                if key not in columns:
                    issues.append(InputIssue(file, label, key, f"unknown field (expected one of {', '.join(columns)})"))
            rows.append(Row(file, label, values))
    if issues:
        raise InputError(issues)
    return tables


def problem_tables_to_json(tables: Tables) -> dict[str, Any]:
    """Tables back to the JSON input format (used to turn CSV input into JSON)."""
    out: dict[str, Any] = {"settings": {k: v for k, v in tables.settings.values.items() if v not in (None, "")}}
    for name in TABLES:
        out[name] = [{k: v for k, v in r.values.items() if v not in (None, "")} for r in tables.rows(name)]
    return out
