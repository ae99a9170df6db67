"""Outputs: JSON timetable, county CSV, iCalendar files, HTML pages, CLI round trip and
`schedule apply` into a lesson store (fake port and the real SQLite LessonStore)."""

from __future__ import annotations

import argparse
import csv
import json
from datetime import date, datetime
from pathlib import Path
from typing import Any

import pytest
from icalendar import Calendar

from scheduler import cli
from scheduler.apply import apply_week, week_lessons
from scheduler.export import write_outputs
from scheduler.inputs import load_problem
from scheduler.pipeline import make_timetable
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
    def __init__(self) -> None:
        self.lessons: dict[str, dict[str, Any]] = {}
        self.tokens: list[dict[str, Any]] = []

    def create_lesson(self, lesson: dict[str, Any]) -> str:
        if lesson["id"] in self.lessons:
            raise ValueError(f"id: lesson {lesson['id']!r} already exists")
        self.lessons[lesson["id"]] = lesson
        return str(lesson["id"])

    def mint_token(self, *, lesson: str, classroom: str, name: str, role: str, ttl_s: float) -> str:
        self.tokens.append({"lesson": lesson, "classroom": classroom, "role": role, "ttl_s": ttl_s})
        return f"tok-{lesson}-{classroom}"


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


def test_apply_into_the_real_lesson_store(solved: tuple[Timetable, Path], tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    from sfu.lessons import Lesson
    from sfu.store import LessonStore, make_engine, sqlite_url
    from sfu.tokens import TokenIssuer, load_or_create_secret

    class StorePort:
        def __init__(self, data_dir: Path) -> None:
            self.store = LessonStore(make_engine(sqlite_url(data_dir)))
            self.issuer = TokenIssuer(load_or_create_secret(data_dir))

        def create_lesson(self, lesson: dict[str, Any]) -> str:
            return self.store.create(Lesson.from_json(lesson)).id

        def mint_token(self, *, lesson: str, classroom: str, name: str, role: str, ttl_s: float) -> str:
            return self.issuer.mint(lesson=lesson, classroom=classroom, name=name, role=role, ttl_s=ttl_s)

    _, out = solved
    parser = argparse.ArgumentParser()
    cli.add_commands(parser.add_subparsers(), StorePort)
    data_dir = tmp_path / "var"
    data_dir.mkdir()
    argv = ["schedule", "apply", str(out / "timetable.json"), "--week", "2025-09-10", "--data-dir", str(data_dir),
            "--base-url", "https://tc.example"]
    ns = parser.parse_args(argv)
    assert ns.func(ns) == 0
    printed = capsys.readouterr().out
    assert "tt-20250910-en3-wed" in printed and "[created]" in printed
    assert "https://tc.example/join?token=" in printed
    port = StorePort(data_dir)
    stored = port.store.get("tt-20250910-en3-wed")
    assert stored is not None and [r.id for r in stored.rurals] == ["hexi-g3"] and stored.subject == "英语"
    claims = port.issuer.verify(printed.split("hexi-g3: https://tc.example/join?token=")[1].split()[0])
    assert claims.classroom == "hexi-g3" and str(claims.role) == "rural"
    ns = parser.parse_args(argv)
    assert ns.func(ns) == 0
    assert "[already exists]" in capsys.readouterr().out
    assert len(port.store.list()) == 5


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
