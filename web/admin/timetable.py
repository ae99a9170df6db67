"""The term timetable in the console: an uploaded CSV set solved in the background with its
progress, then the unmet needs with their reasons, a re-check, and applying a week.

Everything is the scheduler's own code (`scheduler.io_csv.read_tables`, `build_problem`,
`pipeline.make_timetable`, `validate.check`, `apply.apply_week` over the same lesson port as
`twinclass schedule apply`); this module only runs it off the event loop and keeps the state of
the one solve that may run at a time (a 2-core server also forwards live lessons). The uploaded
files are kept beside the timetable as ``DATA_DIR/timetables/<id>.csv/`` for the re-check.
"""

from __future__ import annotations

import logging
import re
import secrets
import shutil
import threading
import time
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from scheduler.apply import AppliedLesson, monday_of
from scheduler.errors import InputError, InputIssue
from scheduler.export import write_json
from scheduler.inputs import build_problem
from scheduler.io_csv import read_tables
from scheduler.pipeline import make_timetable
from scheduler.solver import SolveOptions
from scheduler.tables import TABLES
from scheduler.timetable import Timetable, new_id, read_timetable, stored_timetables, timetable_store
from scheduler.validate import check

CSV_FILES = ("settings", *TABLES)
INPUT_DIR_SUFFIX = ".csv"  # <id>.csv/: the CSV set a console timetable was solved from
_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
MAX_LOG_LINES = 200


class Busy(Exception):
    """Another solve is running."""


@dataclass
class SolveJob:
    id: str
    time_limit_s: float
    started: float = field(default_factory=time.monotonic)
    status: str = "running"  # running | done | failed
    log: list[str] = field(default_factory=list)
    timetable: str = ""
    error: str = ""
    wall_s: float = 0.0

    def to_json(self) -> dict[str, Any]:
        elapsed = self.wall_s if self.status != "running" else time.monotonic() - self.started
        progress = 1.0 if self.status != "running" else min(0.99, elapsed / max(self.time_limit_s, 0.1))
        return {"id": self.id, "status": self.status, "elapsed_s": round(elapsed, 1),
                "time_limit_s": self.time_limit_s, "progress": round(progress, 3), "log": self.log[-20:],
                "timetable": self.timetable or None, "error": self.error or None}


class _JobLog(logging.Handler):
    """The solver's progress lines (`scheduler.solver` logs each stage and incumbent) for a job."""

    def __init__(self, job: SolveJob) -> None:
        super().__init__(logging.INFO)
        self.job = job

    def emit(self, record: logging.LogRecord) -> None:
        if len(self.job.log) < MAX_LOG_LINES:
            self.job.log.append(record.getMessage())


class TimetableDesk:
    def __init__(self, data_dir: Path) -> None:
        self.store = timetable_store(data_dir)
        self.jobs: dict[str, SolveJob] = {}
        self._lock = threading.Lock()

    def validate(self, files: dict[str, str]) -> Path:
        """Write an upload to a fresh directory and check it whole; InputError lists every issue."""
        unknown = sorted(set(files) - set(CSV_FILES))
        if unknown:
            raise InputError([InputIssue(f"{unknown[0]}.csv", "-", "-",
                                         f"not a timetable input file ({', '.join(CSV_FILES)})")])
        upload = self.store / "uploads" / secrets.token_hex(6)
        upload.mkdir(parents=True)
        for name, text in files.items():
            (upload / f"{name}.csv").write_text(text, encoding="utf-8")
        try:
            build_problem(read_tables(upload))
        except InputError:
            shutil.rmtree(upload, ignore_errors=True)
            raise
        return upload

    def start(self, upload: Path, time_limit_s: float, workers: int) -> SolveJob:
        with self._lock:
            if any(j.status == "running" for j in self.jobs.values()):
                shutil.rmtree(upload, ignore_errors=True)
                raise Busy("a timetable is being solved; wait for it to finish")
            job = SolveJob(new_id(), time_limit_s)
            self.jobs[job.id] = job
        threading.Thread(target=self._run, args=(job, upload, workers), name=f"solve-{job.id}", daemon=True).start()
        return job

    def _run(self, job: SolveJob, upload: Path, workers: int) -> None:
        handler = _JobLog(job)
        solver_log = logging.getLogger("scheduler.solver")
        solver_log.addHandler(handler)
        level = solver_log.level
        solver_log.setLevel(logging.INFO)
        try:
            problem = build_problem(read_tables(upload))
            tt = make_timetable(problem, SolveOptions(time_limit_s=job.time_limit_s, workers=workers), tt_id=job.id)
            write_json(tt, self.store / f"{tt.id}.json")
            upload.rename(self.store / f"{tt.id}{INPUT_DIR_SUFFIX}")
            job.timetable = tt.id
            job.status = "done"
        except Exception as exc:  # reported to the page; the server goes on
            logging.getLogger(__name__).exception("solving %s failed", job.id)
            job.error = f"{type(exc).__name__}: {exc}"
            job.status = "failed"
        finally:
            job.wall_s = time.monotonic() - job.started
            solver_log.removeHandler(handler)
            solver_log.setLevel(level)

    def listing(self) -> list[dict[str, Any]]:
        out = []
        for path in stored_timetables(self.store):
            try:
                tt = read_timetable(path)
            except Exception:  # a file that is not a timetable: not listed
                continue
            out.append({"id": tt.id, "created_at": tt.created_at, "summary": _summary(tt),
                        "checkable": (self.store / f"{tt.id}{INPUT_DIR_SUFFIX}").is_dir()})
        return sorted(out, key=lambda t: str(t["created_at"]), reverse=True)

    def get(self, tt_id: str) -> Timetable | None:
        path = self.store / f"{tt_id}.json"
        if not _ID_RE.match(tt_id) or not path.is_file():
            return None
        return read_timetable(path)

    def recheck(self, tt: Timetable) -> list[dict[str, Any]] | None:
        """The timetable's violations against its own input (None: its input is not kept here)."""
        upload = self.store / f"{tt.id}{INPUT_DIR_SUFFIX}"
        if not upload.is_dir():
            return None
        return [v.to_json() for v in check(build_problem(read_tables(upload)), tt)]


def describe(tt: Timetable) -> dict[str, Any]:
    """What the console shows of a timetable: its summary, unmet needs with reasons, the term."""
    return {"id": tt.id, "created_at": tt.created_at, "summary": _summary(tt), "unmet": tt.unmet,
            "settings": tt.settings, "assignments": len(tt.assignments)}


def _summary(tt: Timetable) -> dict[str, Any]:
    keys = ("need", "covered", "coverage", "coverage_bound", "coverage_optimal", "classrooms", "master_classes",
            "wall_s")
    return {k: tt.summary.get(k) for k in keys}


def applied_json(week: date, items: list[AppliedLesson]) -> dict[str, Any]:
    """What applying a week did (no tokens: the console makes join links per lesson)."""
    return {"week": monday_of(week).isoformat(),
            "lessons": [{"id": i.id, "title": i.lesson["title"], "planned_start": i.lesson["planned_start"],
                         "planned_end": i.lesson["planned_end"], "state": i.state, "error": i.error or None}
                        for i in items]}
