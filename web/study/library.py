"""The recordings library: the recorder's catalog joined with lessons (school, teacher, county),
and the classroom analysis of each archive, computed once in a separate process and kept in SQL.

The recorder owns the catalog, the manifest and the files (`recorder.catalog`,
`recorder.http_api`); this module only reads them.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import sys
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from recorder.analysis import AnalysisOptions, reanalyze
from recorder.catalog import Recording, RecordingCatalog, RecordingFilter, recordings_table
from recorder.manifest import MANIFEST, read_manifest
from sfu.lessons import Lesson
from sfu.store import LessonStore
from web.study.db import metadata, utcnow
from web.study.directory import Directory

logger = logging.getLogger(__name__)

MARKER_EVENTS = ("floor", "hand_raised", "hand_lowered", "courseware", "classroom_joined", "classroom_left")
ANALYSABLE = ("captured", "building", "ready")  # a capture on disk (built or not)
SEARCH_BATCH = 500  # catalog rows read at a time when a search filters on the lessons' places and people

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

    def search(self, f: LibraryFilter, lessons_allowed: str | frozenset[str] | None = None, *, limit: int = 200,
               offset: int = 0) -> tuple[list[dict[str, Any]], bool]:
        """A page of the recordings matching every given field, newest first, and whether more
        follow; `lessons_allowed`: only this lesson's (tokens for one lesson), or only these
        lessons' (a scoped login's, `sfu.scope`). Blocking.

        Lesson, subject, grade and dates are selected in SQL; school, teacher, county and
        classroom come from the lessons and timetables (`Directory`), so those are matched here,
        reading the catalog in batches until the page is full (no cap on how far back)."""
        among = lessons_allowed if isinstance(lessons_allowed, frozenset) else None
        one = lessons_allowed if isinstance(lessons_allowed, str) else None
        if (one and f.lesson and f.lesson != one) or (among is not None and f.lesson and f.lesson not in among):
            return [], False
        since, until = _local_bounds(f.since, f.until)
        base = RecordingFilter(lesson=one or f.lesson or None, subject=f.subject or None,
                               grade=f.grade or None, since=since, until=until, lessons=among)
        derived = bool(f.school or f.teacher or f.county or f.classroom)
        cache: dict[str, Lesson | None] = {}
        out: list[dict[str, Any]] = []
        skip = 0 if derived else offset  # without derived filters, SQL pages by itself
        at = offset if not derived else 0
        batch = limit + 1 if not derived else SEARCH_BATCH
        while len(out) <= limit:
            records = self.catalog.list(dataclasses.replace(base, limit=batch, offset=at))
            at += len(records)
            missing = {r.lesson_id for r in records} - set(cache)
            cache.update({lesson.id: lesson for lesson in self.store.get_many(missing)})
            for record in records:
                item = self.describe(record, self.lesson_of(record, cache))
                if derived and not _matches(f, item):
                    continue
                if skip < offset:
                    skip += 1
                    continue
                out.append(item)
            if len(records) < batch:
                break
        return out[:limit], len(out) > limit

    def markers(self, record: Recording) -> list[dict[str, Any]]:
        """The lesson's events on the video timeline (from the built archive's manifest)."""
        manifest = read_manifest(self.path_of(record))
        if manifest is None:
            return []
        return [e for e in manifest.get("events", []) if e.get("event") in MARKER_EVENTS]

    def manifest(self, record: Recording) -> dict[str, Any] | None:
        return read_manifest(self.path_of(record))


def _matches(f: LibraryFilter, item: dict[str, Any]) -> bool:
    """The filters a catalog row cannot answer: school, teacher, county, classroom (id or name)."""
    if f.school and not any(f.school in s for s in item["schools"]):
        return False
    if f.teacher and f.teacher not in item["teacher"]:
        return False
    if f.county and f.county not in item["counties"]:
        return False
    return not f.classroom or any(f.classroom == c["classroom"] or f.classroom in c["name"]
                                  for c in item["classrooms"])


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


def precomputed_analysis(directory: Path) -> str | None:
    """The analysis the recorder built with the archive (``manifest["analysis"]``), if any."""
    manifest = read_manifest(directory)
    name = manifest.get("analysis") if manifest else None
    if not isinstance(name, str):
        return None
    try:
        text = (directory / name).read_text(encoding="utf-8")
        json.loads(text)
    except (OSError, ValueError):
        return None
    return text


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
        # recording id -> (catalog row's updated_at, analysed stamp) when a pass found it up to date
        self._seen: dict[str, tuple[Any, str | None]] = {}

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
        text = precomputed_analysis(directory)
        if text is not None:  # the recorder made it with the archive: nothing to wait for
            self._store(record.id, stamp, "ready", text, None, 0.0)
            return self.state(record, options)
        if self.running == record.id:
            return {"status": "running"}
        self._seen.pop(record.id, None)  # the next pass looks at it on disk
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

    def due_list(self) -> list[tuple[Recording, str]]:
        """Every recording whose archive changed since it was analysed, newest first (blocking).

        One query joins the catalog with the stored analyses; a recording is looked at on disk
        (one stat) only when its catalog row or its analysis changed since the last pass, or
        when a reader found it pending (`state`)."""
        r, a = recordings_table, analysis_table
        q = (sa.select(r.c.id, r.c.directory, r.c.updated_at, a.c.stamp)
             .select_from(r.outerjoin(a, a.c.recording_id == r.c.id))
             .where(r.c.status.in_(ANALYSABLE)).order_by(r.c.started_at.desc()))
        with self._engine.connect() as conn:
            rows = conn.execute(q).all()
        out: list[tuple[Recording, str]] = []
        seen: dict[str, tuple[Any, str | None]] = {}
        for rec_id, directory, updated_at, analysed in rows:
            seen[rec_id] = (updated_at, analysed)
            if self._seen.get(rec_id) == (updated_at, analysed):
                continue  # nothing changed since the last pass found it up to date
            stamp = archive_stamp(self.library.root / directory)
            if stamp is None or stamp == analysed:
                continue
            del seen[rec_id]  # due: look again next time, whatever happens
            record = self.library.catalog.get(rec_id)
            if record is not None:
                out.append((record, stamp))
        self._seen = seen
        return out

    # -- the work ----------------------------------------------------------------------------------

    async def analyse(self, record: Recording, stamp: str) -> None:
        directory = self.library.path_of(record)
        text = await asyncio.to_thread(precomputed_analysis, directory)
        if text is not None:
            self._store(record.id, stamp, "ready", text, None, 0.0)
            return
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
        for record, stamp in await asyncio.to_thread(self.due_list):
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
