"""Malformed input is refused with the exact file, row and field, and nothing is solved."""

from __future__ import annotations

import argparse
import csv
import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from scheduler import cli
from scheduler.errors import InputError
from scheduler.inputs import load_problem


def where(exc: InputError) -> set[tuple[str, str, str]]:
    return {(i.file, i.row, i.field) for i in exc.issues}


def edit_csv(path: Path, line: int, column: str, value: str) -> None:
    """Set one cell; `line` is the spreadsheet line number (header = 1)."""
    rows = list(csv.reader(path.open(encoding="utf-8")))
    rows[line - 1][rows[0].index(column)] = value
    with path.open("w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows(rows)


def append_csv(path: Path, row: list[str]) -> int:
    with path.open("a", newline="", encoding="utf-8") as f:
        csv.writer(f).writerow(row)
    return len(path.read_text(encoding="utf-8").splitlines())


@pytest.fixture
def sheets(tmp_path: Path, example_csv: Path) -> Path:
    return Path(shutil.copytree(example_csv, tmp_path / "input"))


def test_examples_load(example_csv: Path, example_json: Path) -> None:
    a, b = load_problem(example_csv), load_problem(example_json)
    assert a.classrooms == b.classrooms and a.classes == b.classes and a.bells == b.bells


def test_unknown_school(sheets: Path) -> None:
    edit_csv(sheets / "classrooms.csv", 3, "school", "r-nowhere")
    with pytest.raises(InputError) as err:
        load_problem(sheets)
    assert where(err.value) == {("classrooms.csv", "3", "school")}
    assert "unknown school 'r-nowhere'" in str(err.value)


def test_time_out_of_range(sheets: Path) -> None:
    edit_csv(sheets / "bells.csv", 4, "end", "25:00")
    with pytest.raises(InputError) as err:
        load_problem(sheets)
    assert where(err.value) == {("bells.csv", "4", "end")}
    assert "'25:00' is not a time of day" in str(err.value)


def test_period_overlapping_another(sheets: Path) -> None:
    line = append_csv(sheets / "bells.csv", ["r-hexi", "1-5", "4", "09:00", "09:40"])
    with pytest.raises(InputError) as err:
        load_problem(sheets)
    assert where(err.value) == {("bells.csv", str(line), "start")}
    assert "overlaps period 2" in str(err.value)


def test_negative_need(sheets: Path) -> None:
    edit_csv(sheets / "needs.csv", 5, "periods", "-1")
    with pytest.raises(InputError) as err:
        load_problem(sheets)
    assert where(err.value) == {("needs.csv", "5", "periods")}
    assert "below the minimum 0" in str(err.value)


def test_several_problems_are_all_reported(sheets: Path) -> None:
    edit_csv(sheets / "classes.csv", 2, "capacity", "9")
    edit_csv(sheets / "classes.csv", 3, "teacher", "t-nobody")
    edit_csv(sheets / "busy.csv", 2, "weekday", "Funday")
    edit_csv(sheets / "schools.csv", 2, "link_capacity", "two")
    with pytest.raises(InputError) as err:
        load_problem(sheets)
    assert where(err.value) == {("classes.csv", "2", "capacity"), ("classes.csv", "3", "teacher"),
                                ("busy.csv", "2", "weekday"), ("schools.csv", "2", "link_capacity")}


def test_missing_file_and_unknown_column(sheets: Path) -> None:
    (sheets / "teachers.csv").unlink()
    with pytest.raises(InputError) as err:
        load_problem(sheets)
    assert where(err.value) == {("teachers.csv", "-", "-")}
    shutil.copy(sheets / "classes.csv", sheets / "teachers.csv")
    with pytest.raises(InputError) as err:
        load_problem(sheets)
    assert ("teachers.csv", "1", "teacher") in where(err.value)


def json_input(tmp_path: Path, example_json: Path, change: Any) -> Path:
    data = json.loads(example_json.read_text(encoding="utf-8"))
    change(data)
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    return path


@pytest.mark.parametrize(("change", "expected"), [
    (lambda d: d["classes"][2].update(start="25:00"), ("classes[2]", "start")),
    (lambda d: d["classrooms"][0]["needs"].update({"英语": -2}), ("classrooms[0].needs.英语", "periods")),
    (lambda d: d["classrooms"][1].update(school="r-nowhere"), ("classrooms[1]", "school")),
    (lambda d: d["bells"].append({"school": "r-hexi", "weekdays": "3", "period": 9, "start": "08:30",
                                  "end": "09:00"}), ("bells[8]", "start")),
    (lambda d: d["teachers"][0].update(max_classrooms=-1), ("teachers[0]", "max_classrooms")),
    (lambda d: d["classes"][0].update(capcity=4), ("classes[0]", "capcity")),
    (lambda d: d["settings"].update(term_end="2025-13-01"), ("settings", "term_end")),
    (lambda d: d["classrooms"][0].update(id="河西"), ("classrooms[0]", "id")),
    (lambda d: d["classes"][0].update(kind="lecture"), ("classes[0]", "kind")),
    (lambda d: d["classes"][0].update(listeners="hexi-g4"), ("classes[0]", "listeners")),  # not a broadcast
    (lambda d: d["classes"][0].update(kind="broadcast", listeners=["hexi-g4", "nowhere-g1"]),
     ("classes[0]", "listeners")),
    (lambda d: d["classes"].append({"id": "en3-mon2", "teacher": "t-wang", "subject": "英语", "grade": 3,
                                    "weekday": 1, "start": "09:00", "end": "09:40"}), ("classes[7]", "start")),
])
def test_json_errors_name_row_and_field(tmp_path: Path, example_json: Path, change: Any,
                                        expected: tuple[str, str]) -> None:
    with pytest.raises(InputError) as err:
        load_problem(json_input(tmp_path, example_json, change))
    assert ("bad.json", *expected) in where(err.value)


def test_a_teacher_cannot_give_two_classes_at_once(tmp_path: Path, example_json: Path) -> None:
    def change(d: Any) -> None:
        d["classes"].append({"id": "mu3-fri2", "teacher": "t-li", "subject": "音乐", "grade": 3, "weekday": 5,
                             "start": "10:20", "end": "11:00"})
        d["classes"].append({"id": "mu3-fri3", "teacher": "t-wang", "subject": "音乐", "grade": 3, "weekday": 5,
                             "start": "10:20", "end": "11:00"})  # another teacher at that time: fine

    with pytest.raises(InputError) as err:
        load_problem(json_input(tmp_path, example_json, change))
    (issue,) = err.value.issues
    assert (issue.file, issue.row, issue.field) == ("bad.json", "classes[7]", "start")
    assert "overlaps class mu3-fri of the same teacher 't-li' (09:50-10:30" in issue.message


def test_cli_solve_refuses_bad_input_and_writes_nothing(tmp_path: Path, sheets: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    edit_csv(sheets / "needs.csv", 2, "periods", "-3")
    parser = argparse.ArgumentParser()
    cli.add_commands(parser.add_subparsers(), None)
    ns = parser.parse_args(["schedule", "solve", str(sheets), "--out", str(tmp_path / "out"), "-q"])
    assert ns.func(ns) == 2
    assert not (tmp_path / "out").exists()
    assert "needs.csv: row 2, field 'periods'" in capsys.readouterr().err
