"""The recordings library: the recorder's catalog joined with lessons (school, teacher, county),
and the classroom analysis of each archive, computed once in a separate process and kept in SQL.

The recorder owns the catalog, the manifest and the files (`recorder.catalog`,
`recorder.http_api`); this module only reads them.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import sys
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from recorder.analysis import AnalysisOptions, reanalyze
from recorder.catalog import Recording, RecordingCatalog, RecordingFilter
from recorder.manifest import MANIFEST, read_manifest
from sfu.lessons import Lesson
from sfu.store import LessonStore
from web.study.db import metadata, utcnow
from web.study.directory import Directory

logger = logging.getLogger(__name__)

MARKER_EVENTS = ("floor", "hand_raised", "hand_lowered", "courseware", "classroom_joined", "classroom_left")
ANALYSABLE = ("captured", "building", "ready")  # a capture on disk (built or not)

analysis_table = sa.Table(
    "study_analysis",
    metadata,
    sa.Column("recording_id", sa.String(128), primary_key=True),
    sa.Column("stamp", sa.Text, nullable=False),  # which version of the archive was analysed
    sa.Column("status", sa.String(16), nullable=False),  # ready | failed
    sa.Column("result", sa.Text, nullable=True),  # JSON
    sa.Column("error", sa.Text, nullable=True),
    sa.Column("seconds", sa.Float, nullable=True),
    sa.Column("updated_at", sa.DateTime, nullable=False),
)


@dataclass
class LibraryFilter:
    subject: str = ""
    grade: str = ""
    school: str = ""  # part of any classroom's school name
    teacher: str = ""  # part of the teacher's name
    classroom: str = ""  # a classroom id, or part of its name
    county: str = ""
    lesson: str = ""
    since: date | None = None  # local dates, inclusive
    until: date | None = None


def _local_bounds(since: date | None, until: date | None) -> tuple[datetime | None, datetime | None]:
    """UTC bounds of local calendar days [since, until]."""
    from datetime import UTC

    def utc(d: date) -> datetime:
        return datetime.combine(d, datetime.min.time()).astimezone().astimezone(UTC).replace(tzinfo=None)

    return (utc(since) if since else None, utc(until + timedelta(days=1)) if until else None)


class RecordingLibrary:
    def __init__(self, engine: sa.Engine, store: LessonStore, data_dir: Path, directory: Directory) -> None:
        self.catalog = RecordingCatalog(engine)
        self.store = store
        self.root = data_dir / "recordings"
        self.directory = directory
        metadata.create_all(engine)

    def path_of(self, record: Recording) -> Path:
        return self.root / record.directory

    def lesson_of(self, record: Recording, cache: dict[str, Lesson | None] | None = None) -> Lesson | None:
        if cache is not None and record.lesson_id in cache:
            return cache[record.lesson_id]
        lesson = self.store.get(record.lesson_id)
        if lesson is None:  # the lesson was deleted: the archive still says what it was
            manifest_lesson = _session_lesson(self.path_of(record))
            if manifest_lesson:
                with contextlib.suppress(Exception):
                    lesson = Lesson.from_json(manifest_lesson)
        if cache is not None:
            cache[record.lesson_id] = lesson
        return lesson

    def describe(self, record: Recording, lesson: Lesson | None) -> dict[str, Any]:
        about = self.directory.describe(lesson) if lesson else {"teacher": "", "master_school": "", "schools": [],
                                                                  "counties": [], "classrooms": []}
        return {**record.to_json(), "lesson_title": lesson.title if lesson else record.title, **about}

    def search(self, f: LibraryFilter, lessons_allowed: str | None = None) -> list[dict[str, Any]]:
        """Recordings matching every given field; `lessons_allowed`: only this lesson's (classroom tokens)."""
        since, until = _local_bounds(f.since, f.until)
        records = self.catalog.list(RecordingFilter(lesson=lessons_allowed or f.lesson or None,
                                                    subject=f.subject or None, grade=f.grade or None,
                                                    since=since, until=until, limit=1000))
        if lessons_allowed and f.lesson and f.lesson != lessons_allowed:
            return []
        cache: dict[str, Lesson | None] = {}
        out = []
        for record in records:
            item = self.describe(record, self.lesson_of(record, cache))
            if f.school and not any(f.school in s for s in item["schools"]):
                continue
            if f.teacher and f.teacher not in item["teacher"]:
                continue
            if f.county and f.county not in item["counties"]:
                continue
            if f.classroom and not any(f.classroom == c["classroom"] or f.classroom in c["name"]
                                       for c in item["classrooms"]):
                continue
            out.append(item)
        return out

    def markers(self, record: Recording) -> list[dict[str, Any]]:
        """The lesson's events on the video timeline (from the built archive's manifest)."""
        manifest = read_manifest(self.path_of(record))
        if manifest is None:
            return []
        return [e for e in manifest.get("events", []) if e.get("event") in MARKER_EVENTS]

    def manifest(self, record: Recording) -> dict[str, Any] | None:
        return read_manifest(self.path_of(record))


def _session_lesson(directory: Path) -> dict[str, Any] | None:
    manifest = read_manifest(directory)
    path = directory / "capture" / "session.json"
    try:
        session = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
    except ValueError:
        session = {}
    lesson = session.get("lesson")
    if isinstance(lesson, dict):
        return lesson
    return manifest.get("lesson") if manifest else None


def archive_stamp(directory: Path) -> str | None:
    """Changes whenever the archive does: the manifest (built), else the capture's end marker."""
    for path, kind in ((directory / MANIFEST, "manifest"), (directory / "capture" / "ended.json", "capture")):
        with contextlib.suppress(OSError):
            st = path.stat()
            return f"{kind}:{st.st_mtime_ns}:{st.st_size}"
    return None


class AnalysisRunner:
    """Analyses archives one at a time in a niced child process (`python -m recorder.analysis`)."""

    def __init__(self, engine: sa.Engine, library: RecordingLibrary, *, poll_s: float, nice: int,
                 enabled: bool = True) -> None:
        self._engine = engine
        self.library = library
        self.poll_s = poll_s
        self.nice = nice
        self.enabled = enabled
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._proc: asyncio.subprocess.Process | None = None
        self.running: str | None = None

    # -- the cache ---------------------------------------------------------------------------------

    def stored(self, recording_id: str) -> dict[str, Any] | None:
        t = analysis_table
        with self._engine.connect() as conn:
            row = conn.execute(t.select().where(t.c.recording_id == recording_id)).first()
        return dict(row._mapping) if row is not None else None

    def _store(self, recording_id: str, stamp: str, status: str, result: str | None, error: str | None,
               seconds: float) -> None:
        t = analysis_table
        values = {"stamp": stamp, "status": status, "result": result, "error": error, "seconds": seconds,
                  "updated_at": utcnow()}
        with self._engine.begin() as conn:
            if not conn.execute(t.update().where(t.c.recording_id == recording_id).values(**values)).rowcount:
                conn.execute(t.insert().values(recording_id=recording_id, **values))

    def state(self, record: Recording, options: AnalysisOptions | None = None) -> dict[str, Any]:
        """{"status": ready|pending|running|failed|unavailable, "analysis"?: ..., "error"?: ...}."""
        directory = self.library.path_of(record)
        stamp = archive_stamp(directory) if record.status in ANALYSABLE else None
        row = self.stored(record.id)
        if row is not None and (stamp is None or row["stamp"] == stamp):
            if row["status"] == "ready" and row["result"]:
                result = json.loads(row["result"])
                if options is not None:
                    result = reanalyze(result, options)
                return {"status": "ready", "analysis": result, "seconds": row["seconds"]}
            if row["status"] == "failed":
                return {"status": "failed", "error": row["error"]}
        if stamp is None:
            return {"status": "unavailable", "error": f"the recording is {record.status}"}
        if self.running == record.id:
            return {"status": "running"}
        self._wake.set()
        return {"status": "pending"}

    def due(self, record: Recording) -> str | None:
        if record.status not in ANALYSABLE:
            return None
        stamp = archive_stamp(self.library.path_of(record))
        row = self.stored(record.id)
        if stamp is None or (row is not None and row["stamp"] == stamp):
            return None
        return stamp

    # -- the work ----------------------------------------------------------------------------------

    async def analyse(self, record: Recording, stamp: str) -> None:
        directory = self.library.path_of(record)
        cmd = ["nice", "-n", str(self.nice), sys.executable, "-m", "recorder.analysis", str(directory)]
        started = asyncio.get_running_loop().time()
        self.running = record.id
        try:
            proc = await asyncio.create_subprocess_exec(*cmd, stdout=asyncio.subprocess.PIPE,
                                                        stderr=asyncio.subprocess.PIPE)
            self._proc = proc
            out, err = await proc.communicate()
        finally:
            self._proc = None
            self.running = None
        seconds = round(asyncio.get_running_loop().time() - started, 2)
        ok = proc.returncode == 0
        if ok:
            try:
                json.loads(out)
            except ValueError:
                ok, err = False, b"the analysis printed something that is not JSON"
        if ok:
            self._store(record.id, stamp, "ready", out.decode(), None, seconds)
            logger.info("analysis of %s ready in %.1f s", record.id, seconds)
        else:
            message = (err.decode(errors="replace").strip().splitlines() or ["analysis failed"])[-1][:500]
            self._store(record.id, stamp, "failed", None, message, seconds)
            logger.error("analysis of %s failed: %s", record.id, message)

    async def run_once(self) -> int:
        done = 0
        for record in self.library.catalog.list(RecordingFilter(limit=10000)):
            stamp = self.due(record)
            if stamp is not None:
                await self.analyse(record, stamp)
                done += 1
        return done

    async def _loop(self) -> None:
        while True:
            try:
                await self.run_once()
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("classroom analysis pass failed")
            self._wake.clear()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.poll_s)

    async def start(self, app: Any = None) -> None:
        if self.enabled and self._task is None:
            self._task = asyncio.ensure_future(self._loop())

    async def stop(self, app: Any = None) -> None:
        task, self._task = self._task, None
        proc = self._proc
        if proc is not None and proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.terminate()
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
