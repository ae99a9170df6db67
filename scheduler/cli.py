"""`twinclass schedule …`: solve, check, explain, export, apply and template."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

from scheduler.errors import InputError, SchedulerError
from scheduler.ports import HtmlRenderer, LessonPort

if TYPE_CHECKING:
    from scheduler.timetable import Timetable

# The composition root's wiring of `schedule apply` to a lesson store: `port_options` adds the
# options that say which store (database URL, secret), the factory opens the port from them.
LessonPortFactory = Callable[[argparse.Namespace], LessonPort]
PortOptions = Callable[[argparse.ArgumentParser], None]


def add_commands(sub: argparse._SubParsersAction, lesson_port_factory: LessonPortFactory | None = None,
                 render_html: HtmlRenderer | None = None, port_options: PortOptions | None = None) -> None:
    p = sub.add_parser("schedule", help="term timetable: match rural classrooms with master classes")
    p.set_defaults(render_html=render_html)
    ss = p.add_subparsers(dest="schedule_command", required=True)

    s = ss.add_parser("solve", help="solve a timetable from JSON or a directory of CSV files")
    s.add_argument("input", type=Path, help="input.json or a directory of CSV files")
    s.add_argument("--out", type=Path, required=True, help="output directory")
    s.add_argument("--time-limit", type=float, default=60.0, help="seconds for the whole solve (default 60)")
    s.add_argument("--workers", type=int, default=0, help="CP-SAT workers (default: one per CPU)")
    s.add_argument("--previous", type=Path, help="an earlier timetable.json: keep what need not move")
    s.add_argument("--data-dir", type=Path, help="also store the timetable under DATA_DIR/timetables/")
    s.add_argument("--no-html", action="store_true", help="skip the HTML pages")
    s.add_argument("-q", "--quiet", action="store_true", help="no solver progress")
    s.set_defaults(func=cmd_solve)

    c = ss.add_parser("check", help="re-check every constraint of a timetable against the input")
    c.add_argument("input", type=Path)
    c.add_argument("timetable", type=Path)
    c.set_defaults(func=cmd_check)

    e = ss.add_parser("explain", help="why each unmet need is unmet")
    e.add_argument("input", type=Path)
    e.add_argument("timetable", type=Path)
    e.add_argument("--json", action="store_true", help="print JSON")
    e.set_defaults(func=cmd_explain)

    x = ss.add_parser("export", help="write CSV, iCalendar and HTML files from a timetable")
    x.add_argument("timetable", type=Path)
    x.add_argument("--out", type=Path, required=True)
    x.set_defaults(func=cmd_export)

    a = ss.add_parser("apply", help="create the lessons (with join tokens) of one week")
    a.add_argument("timetable", type=Path, nargs="?", help="timetable.json (default: newest in DATA_DIR/timetables)")
    a.add_argument("--week", type=date.fromisoformat, required=True, help="a date in the week (YYYY-MM-DD)")
    a.add_argument("--data-dir", type=Path, default=Path("./var"))
    a.add_argument("--base-url", default="", help="print join links as BASE_URL/join?token=…")
    if port_options is not None:
        port_options(a)
    a.set_defaults(func=lambda ns: cmd_apply(ns, lesson_port_factory))

    t = ss.add_parser("template", help="write the CSV templates (filled with a small example)")
    t.add_argument("out", type=Path)
    t.add_argument("--json", action="store_true", help="write the example as input.json instead")
    t.set_defaults(func=cmd_template)


def _load(path: Path) -> Any:
    from scheduler.inputs import load_problem

    return load_problem(path)


def _report_error(exc: SchedulerError) -> int:
    """Exit status 2, with the reason on stderr (for bad input: every problem found)."""
    if isinstance(exc, InputError):
        print(f"error: {len(exc.issues)} problem(s) in the input; nothing was solved", file=sys.stderr)
        for issue in exc.issues:
            print(f"  {issue}", file=sys.stderr)
    else:
        print(f"error: {exc}", file=sys.stderr)
    return 2


def _load_with_timetable(ns: argparse.Namespace) -> tuple[Any, Timetable]:
    """The problem at ns.input and the timetable at ns.timetable (raises SchedulerError)."""
    from scheduler.timetable import read_timetable

    return _load(ns.input), read_timetable(ns.timetable)


def cmd_solve(ns: argparse.Namespace) -> int:
    from scheduler.export import write_json, write_outputs
    from scheduler.pipeline import make_timetable
    from scheduler.solver import SolveOptions
    from scheduler.timetable import read_timetable, timetable_store

    if not ns.quiet:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    try:
        problem = _load(ns.input)
        previous = read_timetable(ns.previous) if ns.previous else None
    except SchedulerError as exc:
        return _report_error(exc)
    tt = make_timetable(problem, SolveOptions(time_limit_s=ns.time_limit, workers=ns.workers), previous)
    counts = write_outputs(tt, ns.out, render_html=None if ns.no_html else ns.render_html)
    if ns.data_dir:
        write_json(tt, timetable_store(ns.data_dir) / f"{tt.id}.json")
    s = tt.summary
    print(f"timetable {tt.id}: covered {s['covered']} of {s['need']} periods ({100 * s['coverage']:.1f} %), "
          f"proven bound {s['coverage_bound']:.0f}{' (optimal)' if s['coverage_optimal'] else ''}, "
          f"lowest classroom ratio {s['lowest_ratio']:.2f} ({s['lowest_ratio_classroom']}), {s['wall_s']:.1f} s")
    if tt.changes is not None:
        ch = tt.changes
        print(f"minimal change: kept {ch['kept']}, moved/removed {len(ch['removed'])}, added {len(ch['added'])}, "
              f"same class at a new time {len(ch.get('moved', []))}")
        for r in ch["removed"]:
            print(f"  - {r['classroom']} ⟵ {r['class']}: {r['reason']}")
        for r in ch.get("moved", []):
            print(f"  ~ {r['classroom']} ⟵ {r['class']}: {r['reason']}")
        for r in ch["added"]:
            print(f"  + {r['classroom']} ⟵ {r['class']}")
    _print_unmet(tt.unmet)
    print(f"wrote {ns.out}: timetable.json, unmet.csv, {counts['county_csv']} county CSV, "
          f"{counts['classroom_ics']} classroom + {counts['teacher_ics']} teacher calendars, "
          f"{counts['html']} HTML pages")
    return 0


def _print_unmet(unmet: list[dict[str, Any]]) -> None:
    if not unmet:
        print("every need is met")
        return
    print(f"{len(unmet)} need(s) not fully met:")
    for u in unmet:
        print(f"  {u['classroom']} {u['subject']}: {u['covered']}/{u['need']} — {u['reason']}")
        print(f"      → {u['suggestion']}")


def cmd_check(ns: argparse.Namespace) -> int:
    from scheduler.validate import check

    try:
        problem, tt = _load_with_timetable(ns)
    except SchedulerError as exc:
        return _report_error(exc)
    violations = check(problem, tt)
    for v in violations:
        print(v)
    print(f"{len(tt.assignments)} assignments checked: "
          + ("no violations" if not violations else f"{len(violations)} violation(s)"))
    return 1 if violations else 0


def cmd_explain(ns: argparse.Namespace) -> int:
    from scheduler.explain import explain

    try:
        problem, tt = _load_with_timetable(ns)
    except SchedulerError as exc:
        return _report_error(exc)
    unmet = explain(problem, tt.pairs())
    if ns.json:
        print(json.dumps(unmet, ensure_ascii=False, indent=1))
        return 0
    _print_unmet(unmet)
    for u in unmet:
        for d in u["details"][:5]:
            print(f"    {u['classroom']} {u['subject']}: {json.dumps(d, ensure_ascii=False)}")
    return 0


def cmd_export(ns: argparse.Namespace) -> int:
    from scheduler.export import write_outputs
    from scheduler.timetable import read_timetable

    try:
        tt = read_timetable(ns.timetable)
    except SchedulerError as exc:
        return _report_error(exc)
    counts = write_outputs(tt, ns.out, render_html=ns.render_html)
    print(f"wrote {ns.out}: {counts}")
    return 0


def cmd_apply(ns: argparse.Namespace, factory: LessonPortFactory | None) -> int:
    from scheduler.apply import apply_week, monday_of
    from scheduler.timetable import newest_timetable, read_timetable, timetable_store

    if factory is None:
        print("error: no lesson store is wired to the scheduler", file=sys.stderr)
        return 2
    path = ns.timetable
    if path is None:
        path = newest_timetable(timetable_store(ns.data_dir))
        if path is None:
            print(f"error: no timetable given and none in {timetable_store(ns.data_dir)}", file=sys.stderr)
            return 2
    try:
        tt = read_timetable(path)
    except SchedulerError as exc:
        return _report_error(exc)
    port = factory(ns)
    applied = apply_week(tt, ns.week, port)
    print(f"week of {monday_of(ns.week)} from timetable {tt.id}: {len(applied)} lesson(s)")
    failed = 0
    for item in applied:
        lesson = item.lesson
        print(f"{item.id}  {lesson['planned_start'][:16]}–{lesson['planned_end'][11:16]}  {lesson['title']}  "
              f"[{item.state}]")
        failed += bool(item.error)
        for cid, token in item.tokens.items():
            link = f"{ns.base_url.rstrip('/')}/join?token={token}" if ns.base_url else f"token={token}"
            print(f"    {cid}: {link}")
    return 1 if failed else 0


def cmd_template(ns: argparse.Namespace) -> int:
    from scheduler.io_csv import write_tables

    example = json.loads((Path(__file__).parent / "examples" / "small.json").read_text(encoding="utf-8"))
    if ns.json:
        ns.out.parent.mkdir(parents=True, exist_ok=True)
        ns.out.write_text(json.dumps(example, ensure_ascii=False, indent=1), encoding="utf-8")
    else:
        write_tables(example, ns.out)
    print(f"wrote {ns.out}")
    return 0
