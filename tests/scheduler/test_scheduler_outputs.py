"""Outputs: JSON timetable, county CSV, iCalendar files, HTML pages, CLI round trip and
`schedule apply` into a lesson store (fake port and the real SQLite LessonStore)."""

from __future__ import annotations

import argparse
import csv
import json
import os
from dataclasses import replace
from datetime import date, datetime
from pathlib import Path
from typing import Any

import pytest
from icalendar import Calendar

from scheduler import cli
from scheduler.apply import apply_week, week_lessons
from scheduler.export import write_json, write_outputs
from scheduler.inputs import load_problem
from scheduler.pipeline import make_timetable
from scheduler.ports import LessonExists
from scheduler.solver import SolveOptions
from scheduler.timetable import Timetable, read_timetable
from scheduler.views import classroom_view, county_view, teacher_view
from web import timetable as pages
from web.timetable import render as render_page

EXAMPLES = Path(__file__).resolve().parents[2] / "scheduler" / "examples"


@pytest.fixture(scope="module")
def solved(tmp_path_factory: pytest.TempPathFactory) -> tuple[Timetable, Path]:
    problem = load_problem(EXAMPLES / "small.json")
    tt = make_timetable(problem, SolveOptions(time_limit_s=10, workers=2))
    out = tmp_path_factory.mktemp("out")
    write_outputs(tt, out, render_html=render_page)
    return tt, out


def test_files_written(solved: tuple[Timetable, Path]) -> None:
    tt, out = solved
    assert read_timetable(out / "timetable.json").pairs() == tt.pairs()
    rows = list(csv.DictReader((out / "counties" / "清水县.csv").open(encoding="utf-8-sig")))
    assert len(rows) == 5 and rows[0]["county"] == "清水县"
    assert {r["classroom"] for r in rows} == {"hexi-g3", "hexi-g4", "shanling-g12"}
    unmet = list(csv.DictReader((out / "unmet.csv").open(encoding="utf-8-sig")))
    assert {(u["classroom"], u["cause"]) for u in unmet} == {("hexi-g4", "no_common_time"),
                                                            ("shanling-g12", "no_class")}
    names = {p.name for p in (out / "calendars").iterdir()}
    assert {"classroom-hexi-g3.ics", "classroom-shanling-g12.ics", "teacher-t-wang.ics"} <= names
    assert (out / "html" / "county-清水县.html").exists()


def test_calendar_repeats_weekly_over_the_term_and_skips_holidays(solved: tuple[Timetable, Path]) -> None:
    _, out = solved
    cal = Calendar.from_ical((out / "calendars" / "classroom-hexi-g3.ics").read_bytes())
    events = {str(e["uid"]): e for e in cal.walk("VEVENT")}
    assert set(events) == {"hexi-g3.en3-mon@twinclass", "hexi-g3.en3-wed@twinclass", "hexi-g3.mu3-fri@twinclass"}
    wed = events["hexi-g3.en3-wed@twinclass"]
    start = wed.decoded("dtstart")
    assert start.date() == date(2025, 9, 3) and start.hour == 8 and str(start.tzinfo) == "Asia/Shanghai"
    rule = wed["rrule"]
    assert rule["FREQ"] == ["WEEKLY"] and rule["UNTIL"][0].date() == date(2026, 1, 16)
    exdates = [d.dt for d in wed["exdate"].dts] if not isinstance(wed["exdate"], list) else \
        [d.dt for x in wed["exdate"] for d in x.dts]
    assert [d.date() for d in exdates] == [date(2025, 10, 1)]  # National Day falls on a Wednesday
    assert cal.walk("VTIMEZONE")
    teacher = Calendar.from_ical((out / "calendars" / "teacher-t-li.ics").read_bytes())
    summaries = sorted(str(e["summary"]) for e in teacher.walk("VEVENT"))
    assert len(summaries) == 2 and all("远端教室" in s for s in summaries)


def test_views_and_html(solved: tuple[Timetable, Path]) -> None:
    tt, _ = solved
    room = classroom_view(tt, "hexi-g3")
    monday_p2 = room["rows"][1]["cells"][1]
    assert monday_p2["lesson"]["subject"] == "英语" and monday_p2["lesson"]["teacher_name"] == "王老师"
    assert room["rows"][0]["cells"][1] == {"local": True}
    html = pages.render(room)
    assert "河西村小 三年级" in html and "王老师" in html and "本校课" in html and "@media print" in html
    teacher = teacher_view(tt, "t-wang")
    assert "河西村小 三年级" in pages.render(teacher)
    county = county_view(tt, "清水县")
    assert county["covered"] == 5 and county["need"] == 7
    html = pages.render(county)
    assert "没有该年级该学科的主讲课" in html and "山岭教学点 一二年级" in html


class FakePort:
    def __init__(self, can_update: bool = True) -> None:
        self.lessons: dict[str, dict[str, Any]] = {}
        self.tokens: list[dict[str, Any]] = []
        self.can_update = can_update

    def create_lesson(self, lesson: dict[str, Any]) -> str:
        if lesson["id"] in self.lessons:
            raise LessonExists(lesson["id"], self.lessons[lesson["id"]])
        self.lessons[lesson["id"]] = lesson
        return str(lesson["id"])

    def update_lesson(self, lesson: dict[str, Any]) -> None:
        if not self.can_update:
            raise ValueError("this store keeps lessons as they were created")
        self.lessons[lesson["id"]] = lesson

    def mint_token(self, *, lesson: str, classroom: str, name: str, role: str, ttl_s: float) -> str:
        self.tokens.append({"lesson": lesson, "classroom": classroom, "role": role, "ttl_s": ttl_s})
        return f"tok-{lesson}-{classroom}"


def resolved(tt: Timetable, moves: dict[tuple[str, str], str]) -> Timetable:
    """The timetable as a re-solve might leave it: (classroom, class) -> the classroom now in that class."""
    assignments = [replace(a, classroom=moves.get((a.classroom, a.cls), a.classroom)) for a in tt.assignments]
    return replace(tt, id=tt.id + "-b", assignments=assignments)


def test_apply_week_creates_lessons_once(solved: tuple[Timetable, Path]) -> None:
    tt, _ = solved
    port = FakePort()
    now = datetime.fromisoformat("2025-09-01T00:00:00+08:00")
    first = apply_week(tt, date(2025, 9, 4), port, now=now)  # a Thursday: the week of Mon 1 Sep
    assert sorted(port.lessons) == ["tt-20250901-en3-mon", "tt-20250903-en3-wed", "tt-20250903-mu1-wed",
                                    "tt-20250904-en4-thu", "tt-20250905-mu3-fri"]
    assert all(a.created for a in first)
    wed = port.lessons["tt-20250903-en3-wed"]
    assert wed["rurals"] == [{"id": "hexi-g3", "name": "河西村小 三年级", "school": "河西村小"}]
    assert wed["master"]["id"] == "t-wang" and wed["planned_start"] == "2025-09-03T08:00:00+08:00"
    assert {t["role"] for t in port.tokens} == {"master", "rural"}
    assert all(t["ttl_s"] > 2 * 86400 for t in port.tokens if t["lesson"] == "tt-20250905-mu3-fri")
    again = apply_week(tt, date(2025, 9, 1), port, now=now)
    assert len(port.lessons) == 5 and not any(a.created for a in again) and all(a.tokens for a in again)
    # National Day week: Wednesday 1 October is a holiday
    assert all(not lesson["id"].startswith("tt-20251001") for lesson in week_lessons(tt, date(2025, 10, 2)))


def test_apply_updates_a_lesson_whose_classrooms_changed(solved: tuple[Timetable, Path]) -> None:
    tt, _ = solved
    port = FakePort()
    now = datetime.fromisoformat("2025-09-01T00:00:00+08:00")
    apply_week(tt, date(2025, 9, 1), port, now=now)
    port.tokens.clear()
    again = apply_week(resolved(tt, {("hexi-g3", "en3-wed"): "hexi-g4"}), date(2025, 9, 1), port, now=now)
    by_id = {a.id: a for a in again}
    wed = by_id["tt-20250903-en3-wed"]
    assert wed.updated and not wed.created and not wed.error
    assert wed.changes == ["+ rural hexi-g4", "- rural hexi-g3"]
    assert wed.state == "updated: + rural hexi-g4; - rural hexi-g3"
    assert [r["id"] for r in port.lessons["tt-20250903-en3-wed"]["rurals"]] == ["hexi-g4"]
    assert set(wed.tokens) == {"t-wang", "hexi-g4"}
    assert {t["classroom"] for t in port.tokens if t["lesson"] == "tt-20250903-en3-wed"} == {"t-wang", "hexi-g4"}
    assert all(not a.updated and a.state == "already exists" for a in again if a.id != wed.id)


def test_apply_refuses_when_the_store_cannot_update(solved: tuple[Timetable, Path]) -> None:
    tt, _ = solved
    port = FakePort(can_update=False)
    apply_week(tt, date(2025, 9, 1), port)
    port.tokens.clear()
    again = apply_week(resolved(tt, {("hexi-g3", "en3-wed"): "hexi-g4"}), date(2025, 9, 1), port)
    wed = next(a for a in again if a.id == "tt-20250903-en3-wed")
    assert not wed.updated and wed.tokens == {}
    assert "+ rural hexi-g4; - rural hexi-g3" in wed.error and "could not be updated" in wed.error
    assert [r["id"] for r in port.lessons["tt-20250903-en3-wed"]["rurals"]] == ["hexi-g3"]
    assert not any(t["lesson"] == "tt-20250903-en3-wed" for t in port.tokens)


def test_apply_into_the_real_lesson_store(solved: tuple[Timetable, Path], tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str],
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """`twinclass schedule apply` as wired by the composition root writes where `serve` reads:
    TWINCLASS_DATABASE_URL and TWINCLASS_SECRET (or --database-url, --secret) over the data dir."""
    from sfu.store import LessonStore, make_engine
    from sfu.tokens import TokenIssuer
    from twinclass import cli as twinclass_cli

    _, out = solved
    db_url = f"sqlite:///{tmp_path / 'shared.db'}"
    monkeypatch.setenv("TWINCLASS_DATABASE_URL", db_url)
    monkeypatch.setenv("TWINCLASS_SECRET", "bureau-secret-for-the-lesson-server-0123")
    data_dir = tmp_path / "var"
    data_dir.mkdir()
    argv = ["schedule", "apply", str(out / "timetable.json"), "--week", "2025-09-10", "--data-dir", str(data_dir),
            "--base-url", "https://tc.example"]
    assert twinclass_cli.main(argv) == 0
    printed = capsys.readouterr().out
    assert "tt-20250910-en3-wed" in printed and "[created]" in printed
    assert "https://tc.example/join?token=" in printed
    assert not (data_dir / "twinclass.db").exists() and not (data_dir / "token-secret").exists()
    store = LessonStore(make_engine(db_url))
    stored = store.get("tt-20250910-en3-wed")
    assert stored is not None and [r.id for r in stored.rurals] == ["hexi-g3"] and stored.subject == "英语"
    claims = TokenIssuer("bureau-secret-for-the-lesson-server-0123").verify(
        printed.split("hexi-g3: https://tc.example/join?token=")[1].split()[0])
    assert claims.classroom == "hexi-g3" and str(claims.role) == "rural"
    assert twinclass_cli.main(argv) == 0
    assert "[already exists]" in capsys.readouterr().out
    assert len(store.list()) == 5

    # a re-solved timetable: the stored lesson follows it, and the change is printed
    write_json(resolved(read_timetable(out / "timetable.json"), {("hexi-g3", "en3-wed"): "hexi-g4"}),
               tmp_path / "again.json")
    assert twinclass_cli.main(["schedule", "apply", str(tmp_path / "again.json"), *argv[3:]]) == 0
    assert "[updated: + rural hexi-g4; - rural hexi-g3]" in capsys.readouterr().out
    stored = store.get("tt-20250910-en3-wed")
    assert stored is not None and [r.id for r in stored.rurals] == ["hexi-g4"]

    # the options win over the environment, as for `twinclass serve`
    other = f"sqlite:///{tmp_path / 'other.db'}"
    assert twinclass_cli.main([*argv, "--database-url", other, "--secret", "another-secret-of-at-least-32-bytes"]) == 0
    assert "[created]" in capsys.readouterr().out
    assert len(LessonStore(make_engine(other)).list()) == 5


def test_apply_takes_the_newest_timetable_not_a_stored_input(solved: tuple[Timetable, Path], tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    tt, _ = solved
    store = tmp_path / "var" / "timetables"
    write_json(tt, store / f"{tt.id}.json")
    raw = store / f"{tt.id}.input.json"  # what the HTTP solve keeps beside it
    raw.write_text((EXAMPLES / "small.json").read_text(encoding="utf-8"), encoding="utf-8")
    later = (store / f"{tt.id}.json").stat().st_mtime + 10
    os.utime(raw, (later, later))
    port = FakePort()
    parser = argparse.ArgumentParser()
    cli.add_commands(parser.add_subparsers(), lambda ns: port)
    ns = parser.parse_args(["schedule", "apply", "--week", "2025-09-10", "--data-dir", str(tmp_path / "var")])
    assert ns.func(ns) == 0
    assert f"from timetable {tt.id}: 5 lesson(s)" in capsys.readouterr().out
    assert len(port.lessons) == 5


def test_cli_solve_check_explain(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    EXAMPLE_CSV = EXAMPLES / "csv"
    parser = argparse.ArgumentParser()
    cli.add_commands(parser.add_subparsers(), None)

    def run(*argv: str) -> int:
        ns = parser.parse_args(list(argv))
        return int(ns.func(ns))

    out = tmp_path / "out"
    assert run("schedule", "solve", str(EXAMPLE_CSV), "--out", str(out), "--time-limit", "10", "--workers", "2",
               "--data-dir", str(tmp_path / "var"), "-q") == 0
    text = capsys.readouterr().out
    assert "covered 5 of 7 periods" in text and "2 need(s) not fully met" in text
    assert len(list((tmp_path / "var" / "timetables").glob("*.json"))) == 1
    assert run("schedule", "check", str(EXAMPLE_CSV), str(out / "timetable.json")) == 0
    assert "no violations" in capsys.readouterr().out
    data = json.loads((out / "timetable.json").read_text(encoding="utf-8"))
    data["assignments"].append(dict(data["assignments"][0], **{"class": "en3-wed", "start": "08:00",
                                                                "end": "08:40", "weekday": 3}))
    (tmp_path / "broken.json").write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    assert run("schedule", "check", str(EXAMPLE_CSV), str(tmp_path / "broken.json")) == 1
    assert "[duplicate]" in capsys.readouterr().out
    assert run("schedule", "explain", str(EXAMPLE_CSV), str(out / "timetable.json"), "--json") == 0
    unmet = json.loads(capsys.readouterr().out)
    assert {u["cause"] for u in unmet} == {"no_common_time", "no_class"}
    assert run("schedule", "solve", str(EXAMPLE_CSV), "--out", str(tmp_path / "again"), "--previous",
               str(out / "timetable.json"), "-q", "--time-limit", "10") == 0
    assert "minimal change: kept 5, moved/removed 0, added 0" in capsys.readouterr().out
    assert run("schedule", "template", str(tmp_path / "tpl")) == 0
    assert (tmp_path / "tpl" / "classes.csv").exists()
