"""The recorder inside the lesson server: when to record, when a lesson is over, when to build.

- A lesson starts recording when its room is created (its first classroom joins, or its planned
  start comes) unless the lesson says ``record: false``.
- It is over when no classroom has been connected for `idle_s`; the end is the moment the last
  one left. Classrooms that come back later start a new recording (a second part).
- While it records, one chunk worker process for the whole server (``python -m recorder chunks``,
  SCHED_IDLE) builds the archive's chunks a bounded distance behind live (`recorder.live_build`).
- Then the archive is finished by a separate, niced process (``python -m recorder build``), one at a
  time, reusing those chunks, and the catalog row becomes ``ready`` (or ``failed`` with the reason).
- On start-up, recordings that a crash left behind (``recording``/``building``) are built from
  what reached the disk. On shutdown, live recordings are closed cleanly and built next start; a build in
  progress is abandoned (killed) and redone then.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import shutil
import sys
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from aiohttp import web

from recorder.build import is_building
from recorder.catalog import Recording, RecordingCatalog, RecordingFilter, utc
from recorder.config import RecorderConfig
from recorder.http_api import recording_routes
from recorder.live_routes import live_routes
from recorder.live_streams import LiveStreams
from recorder.manifest import read_manifest
from recorder.session import RecordingSession, SessionOptions
from sfu.lessons import Lesson
from sfu.room import LessonRoom, RoomDirectory
from sfu.store import LessonStore, make_engine, sqlite_url
from sfu.tokens import TokenIssuer

logger = logging.getLogger(__name__)

BUILD_STOP_S = 2.0  # at shutdown, a build gets this long to go after SIGTERM (then SIGKILL)
WORKER_RESTART_S = 5.0  # a chunk worker that died is started again after this long


@dataclass
class LiveRecording:
    session: RecordingSession
    record: Recording
    idle: asyncio.TimerHandle | None = None
    empty_since: float | None = None


class RecorderService:
    def __init__(self, rooms: RoomDirectory, store: LessonStore, catalog: RecordingCatalog, data_dir: Path,
                 config: RecorderConfig) -> None:
        self.rooms = rooms
        self.store = store
        self.catalog = catalog
        self.root = data_dir / "recordings"
        self.root.mkdir(parents=True, exist_ok=True)
        self.config = config
        self.live: dict[str, LiveRecording] = {}
        self.hls = LiveStreams(data_dir / "live", config.hls)  # the lessons' live HLS streams
        self._queue: asyncio.Queue[str] | None = None
        self._queued: set[str] = set()
        self._build_proc: asyncio.subprocess.Process | None = None
        self._chunk_proc: asyncio.subprocess.Process | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._closing = False
        self.builds_done = 0  # archive builds finished (for /metrics)
        self.builds_failed = 0
        self.build_seconds = 0.0  # their wall time, summed

    # -- lessons -----------------------------------------------------------------------------

    def should_record(self, lesson: Lesson) -> bool:
        """Recording is on for the server and the lesson, and no administrator ended the lesson."""
        return self.config.enabled and lesson.record and not lesson.extra.get("ended_at")

    def on_room_created(self, room: LessonRoom) -> None:
        room.add_listener(lambda event, data: self._on_room_event(room, event, data))
        if self.should_record(room.lesson) and not self._closing:
            self._start(room)

    def _on_room_event(self, room: LessonRoom, event: str, data: dict[str, Any]) -> None:
        self._on_recording_event(room, event, data)
        if event == "floor":
            self.hls.floor(room.lesson.id, data.get("classroom"))
        elif event in ("classroom_joined", "classroom_left", "lesson_updated"):
            self.sync_hls(room)

    def sync_hls(self, room: LessonRoom) -> None:
        """A lesson that is not recorded but wants a live HLS stream gets a session of its own."""
        self.hls.sync(room, recorded=room.lesson.id in self.live, closing=self._closing)

    def _on_recording_event(self, room: LessonRoom, event: str, data: dict[str, Any]) -> None:
        lesson_id = room.lesson.id
        live = self.live.get(lesson_id)
        if event == "lesson_updated":
            self._lesson_updated(room, live)
            return
        if live is None and event == "classroom_joined" and self.should_record(room.lesson) and not self._closing:
            live = self._start(room)  # classrooms came back after the recording ended: a new part
        if live is None:
            return
        live.session.on_room_event(event, data)
        if event == "classroom_joined":
            if live.idle is not None:
                live.idle.cancel()
                live.idle = None
            live.empty_since = None
        elif event == "classroom_left" and not room.connected_classrooms():
            live.empty_since = time.time()
            if live.idle is not None:
                live.idle.cancel()
            ended_at = live.empty_since
            live.idle = asyncio.get_running_loop().call_later(
                self.config.idle_s, lambda: self._spawn(self._end(lesson_id, "lesson ended", ended_at)))

    def _lesson_updated(self, room: LessonRoom, live: LiveRecording | None) -> None:
        """`PATCH /api/lessons/{id}` changed the lesson: stop or start recording, keep the title."""
        lesson = room.lesson
        if live is not None and not self.should_record(lesson):
            reason = "lesson ended by an administrator" if lesson.extra.get("ended_at") else "recording turned off"
            logger.info("lesson %s: %s, stopping %s", lesson.id, reason, live.record.id)
            self._spawn(self._end(lesson.id, reason))
        elif live is not None and live.record.title != lesson.title:
            live.record.title = lesson.title
            self.catalog.save(live.record)
        elif live is None and self.should_record(lesson) and room.connected_classrooms() and not self._closing:
            logger.info("lesson %s: recording turned on", lesson.id)
            self._start(room)

    def _new_id(self, lesson: Lesson, at: float) -> str:
        base = f"{lesson.id}-{datetime.fromtimestamp(at).strftime('%Y%m%d-%H%M%S')}"
        rec_id, n = base, 1
        while (self.root / rec_id).exists() or self.catalog.get(rec_id) is not None:
            n += 1
            rec_id = f"{base}-{n}"
        return rec_id

    def _start(self, room: LessonRoom) -> LiveRecording:
        lesson = room.lesson
        now = time.time()
        rec_id = self._new_id(lesson, now)
        session = RecordingSession(room, rec_id, self.root / rec_id,
                                   SessionOptions(keyframe_interval_s=self.config.keyframe_interval_s))
        record = Recording(
            id=rec_id, lesson_id=lesson.id, started_at=utc(session.epoch), directory=rec_id, status="recording",
            title=lesson.title, subject=lesson.subject, grade=lesson.grade,
            classrooms=[c.id for c in lesson.classrooms],
        )
        self.catalog.save(record)
        live = self.live[lesson.id] = LiveRecording(session, record)
        self.hls.recording_started(room, session)
        self._spawn(self._join(live))
        logger.info("recording lesson %s as %s", lesson.id, rec_id)
        return live

    async def _join(self, live: LiveRecording) -> None:
        try:
            await live.session.start()
        except Exception:
            logger.exception("recorder could not join lesson %s", live.record.lesson_id)

    async def _end(self, lesson_id: str, reason: str, ended_at: float | None = None, *, build: bool = True) -> None:
        live = self.live.pop(lesson_id, None)
        if live is None:
            return
        if live.idle is not None:
            live.idle.cancel()
        await live.session.stop(reason, ended_at)
        await self.hls.recording_ended(lesson_id)
        self.sync_hls(live.session.room)  # still connected classrooms (recording turned off): a stream of its own
        record = live.record
        if not live.session.joined_classrooms and not any((live.session.capture_dir / "tracks").glob("*.mkv")):
            logger.info("recording %s: nobody came, discarded", record.id)
            shutil.rmtree(live.session.directory, ignore_errors=True)
            self.catalog.delete(record.id)
            return
        record.status = "captured"
        record.ended_at = utc(live.session.ended_at or time.time())
        record.duration_s = (record.ended_at - record.started_at).total_seconds()
        self.catalog.save(record)
        if build and self.config.auto_build:
            self.enqueue_build(record.id)

    # -- lessons that start by the timetable ---------------------------------------------------

    async def _planned_starts(self) -> None:
        while True:
            await asyncio.sleep(self.config.planned_poll_s)
            try:
                due = await asyncio.to_thread(self.store.planned_at, datetime.now(),
                                              open_end_s=self.config.planned_wait_s)
                self._check_planned(due)
            except Exception:
                logger.exception("checking planned lesson starts failed")

    def _check_planned(self, due: list[Lesson]) -> None:
        """Open the rooms of `due` (the store's lessons planned to be on now, selected in SQL)."""
        now = time.time()
        for lesson in due:
            start, end = lesson.planned_start, lesson.planned_end
            if start is None or not self.should_record(lesson):
                continue
            t_start = _timestamp(start)
            t_end = _timestamp(end) if end is not None else t_start + self.config.planned_wait_s
            if t_start <= now < t_end and self.rooms.get(lesson.id) is None:
                logger.info("lesson %s: planned start, recording", lesson.id)
                self.rooms.get_or_create(lesson)
        for lesson_id, live in list(self.live.items()):
            lesson = live.session.room.lesson
            if live.session.joined_classrooms or lesson.planned_start is None:
                continue
            t_start = _timestamp(lesson.planned_start)
            t_end = _timestamp(lesson.planned_end) if lesson.planned_end else t_start + self.config.planned_wait_s
            if now >= t_end:
                self._spawn(self._end(lesson_id, "nobody joined"))

    # -- builds ------------------------------------------------------------------------------

    def enqueue_build(self, recording_id: str) -> None:
        if self._queue is None or recording_id in self._queued:
            return
        self._queued.add(recording_id)
        self._queue.put_nowait(recording_id)

    async def _builder(self) -> None:
        assert self._queue is not None
        while True:
            rec_id = await self._queue.get()
            try:
                await self._build(rec_id)
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("building %s failed", rec_id)
            finally:
                self._queued.discard(rec_id)

    async def _build(self, rec_id: str) -> None:
        record = self.catalog.get(rec_id)
        if record is None:
            return
        directory = self.root / record.directory
        while is_building(directory):  # a build left running by a previous server process
            await asyncio.sleep(2)
        record.status = "building"
        record.error = None
        self.catalog.save(record)
        started = time.monotonic()
        cmd = [sys.executable, "-m", "recorder", "build", str(directory), "--quiet", "--no-catalog",
               "--parent-pid", str(os.getpid()),
               "--nice", str(self.config.build_nice), "--fps", str(self.config.build_fps),
               "--workers", str(self.config.build_workers)]
        proc = await asyncio.create_subprocess_exec(*cmd, stdout=asyncio.subprocess.PIPE,
                                                    stderr=asyncio.subprocess.PIPE)
        self._build_proc = proc
        try:
            _out, err = await proc.communicate()
        finally:
            self._build_proc = None
        if self._closing:
            return
        record = self.catalog.get(rec_id) or record
        if proc.returncode == 0:
            apply_manifest(record, directory)
            logger.info("archive %s ready in %.1f s", rec_id, time.monotonic() - started)
        else:
            record.status = "failed"
            record.error = (err.decode(errors="replace").strip().splitlines() or ["build failed"])[-1][:500]
            logger.error("archive %s failed: %s", rec_id, record.error)
        self.catalog.save(record)
        self.build_seconds += time.monotonic() - started
        if record.status == "ready":
            self.builds_done += 1
        else:
            self.builds_failed += 1

    async def _chunk_worker(self) -> None:
        """Keep the chunk worker running (it stops by itself if this server dies)."""
        cmd = [sys.executable, "-m", "recorder", "chunks", "--root", str(self.root), "--parent-pid", str(os.getpid()),
               "--fps", str(self.config.build_fps)]
        env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
        while not self._closing:
            proc = await asyncio.create_subprocess_exec(*cmd, env=env, stdout=asyncio.subprocess.DEVNULL,
                                                        stderr=asyncio.subprocess.PIPE)
            self._chunk_proc = proc
            _out, err = await proc.communicate()
            self._chunk_proc = None
            if self._closing:
                return
            logger.warning("the chunk worker exited (%s): %s", proc.returncode,
                           (err.decode(errors="replace").strip().splitlines() or [""])[-1][:300])
            await asyncio.sleep(WORKER_RESTART_S)

    @property
    def queue_length(self) -> int:
        """Recordings waiting for their archive build (not counting the one building)."""
        return self._queue.qsize() if self._queue is not None else 0

    # -- start-up and shutdown ---------------------------------------------------------------

    async def startup(self, app: web.Application) -> None:
        self._queue = asyncio.Queue()
        self._spawn(self._builder())
        if self.config.auto_build and self.config.live_build:
            self._spawn(self._chunk_worker())
        self._spawn(self._planned_starts())
        self.recover()

    def recover(self) -> None:
        """Pick up what the previous server process left: unfinished recordings and builds."""
        known = {r.id for r in self.catalog.list(RecordingFilter(limit=None))}
        for directory in sorted(p for p in self.root.iterdir() if (p / "capture" / "session.json").exists()):
            if directory.name not in known:
                self.catalog.save(record_from_disk(directory))
        for record in self.catalog.list(RecordingFilter(statuses=("recording", "captured", "building"), limit=None)):
            if record.lesson_id in self.live and self.live[record.lesson_id].record.id == record.id:
                continue
            if record.status not in ("recording", "captured", "building"):
                continue
            directory = self.root / record.directory
            if not directory.exists():
                record.status, record.error = "failed", "recording directory missing"
                self.catalog.save(record)
                continue
            if record.status == "recording":
                record.interrupted = not (directory / "capture" / "ended.json").exists()
                record.status = "captured"
                self.catalog.save(record)
            logger.info("recording %s left unfinished: building it", record.id)
            self.enqueue_build(record.id)

    async def close_live(self, reason: str = "server shutdown") -> None:
        """The server is stopping: end every live recording now (files finished, ``ended.json``
        written, status ``captured``); they are built on the next start. No new recording starts."""
        self._closing = True
        for lesson_id in list(self.live):
            await self._end(lesson_id, reason, build=False)
        await self.hls.close()

    async def shutdown(self, app: web.Application) -> None:
        await self.close_live()
        worker = self._chunk_proc
        if worker is not None and worker.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                worker.terminate()  # a chunk it was building is dropped; its finished chunks stay
        proc = self._build_proc  # a build in progress is abandoned, and redone on the next start
        if proc is not None and proc.returncode is None:
            logger.info("stopping: the build in progress is abandoned (redone on the next start)")
            with contextlib.suppress(ProcessLookupError):
                proc.terminate()
            try:
                await asyncio.wait_for(proc.wait(), BUILD_STOP_S)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(proc.wait(), BUILD_STOP_S)
            logger.info("stopping: the build exited (%s)", proc.returncode)
        for task in list(self._tasks):
            task.cancel()
        for record in self.catalog.list(RecordingFilter(statuses=("building",), limit=None)):
            if record.status == "building":
                record.status = "captured"
                self.catalog.save(record)

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


def _timestamp(dt: datetime) -> float:
    return dt.timestamp()  # naive datetimes are local time, as the timetable writes them


def apply_manifest(record: Recording, directory: Path) -> None:
    """Fill a catalog row from the archive's manifest (status ready)."""
    manifest = read_manifest(directory)
    if manifest is None:
        record.status, record.error = "failed", "build finished without a manifest"
        return
    record.status = "ready"
    record.error = None
    record.started_at = utc(float(manifest["started_at"]))
    record.ended_at = utc(float(manifest["ended_at"]))
    record.duration_s = float(manifest["duration_s"])
    record.interrupted = not manifest.get("complete", True)
    record.size_bytes = sum(int(f["size"]) for f in manifest.get("files", []))


def record_from_disk(directory: Path) -> Recording:
    """A catalog row for a recording directory the catalog does not know (e.g. a restored backup)."""
    session = json.loads((directory / "capture" / "session.json").read_text(encoding="utf-8"))
    lesson = session.get("lesson", {})
    record = Recording(
        id=directory.name, lesson_id=str(lesson.get("id", "")), started_at=utc(float(session["epoch"])),
        directory=directory.name, status="captured", title=str(lesson.get("title", "")),
        subject=str(lesson.get("subject", "")), grade=str(lesson.get("grade", "")),
        classrooms=[c["id"] for c in [lesson.get("master", {}), *lesson.get("rurals", [])] if "id" in c],
    )
    if read_manifest(directory) is not None:
        apply_manifest(record, directory)
    return record


def attach(app: web.Application, *, rooms: RoomDirectory, store: LessonStore, tokens: TokenIssuer,
           data_dir: Path, config: RecorderConfig | None = None) -> RecorderService:
    """Wire the recorder into the lesson server (called by the composition root)."""
    config = config or RecorderConfig.from_env()
    # the lessons' database when the store tells which it is, else SQLite in the data dir
    engine = getattr(store, "engine", None) or make_engine(sqlite_url(data_dir))
    catalog = RecordingCatalog(engine)
    service = RecorderService(rooms, store, catalog, data_dir, config)
    rooms.on_room_created(service.on_room_created)
    app.add_routes(recording_routes(service, tokens))
    app.add_routes(live_routes(service.hls.streams, store, tokens))
    app.on_startup.append(service.startup)
    app.on_shutdown.append(service.shutdown)
    return service
