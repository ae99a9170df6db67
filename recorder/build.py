"""Building the archive of a recording directory: lesson.mp4, poster, thumbnails, analysis, manifest.json.

    capture/ ─▶ per 30 s chunk: sound (levels, voice activity, AAC) ─▶ director (whole lesson) ─▶ shots
             ─▶ per chunk: pictures (H.264) ─▶ lesson.mp4 (joined, +faststart) ─▶ poster, thumbs,
                                                analysis.json ─▶ manifest.json

The chunks live in ``.chunks/`` (`recorder.chunks`): most were built while the lesson was
recorded (`recorder.live_build`); this final step reuses every one whose fingerprint still
matches and builds the rest in worker processes (one per core by default), so a build never
holds the lesson server's event loop; the server starts builds as a separate process anyway.
A lock file keeps two builds of one directory from running at once; the chunk lock makes the
live worker finish its step first.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import math
import multiprocessing
import os
import shutil
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import av
import cv2

from recorder import director
from recorder.analysis import AnalysisOptions, Room, analyze, speech_segments
from recorder.capture import write_json_atomic
from recorder.chunk_audio import render_audio_chunk
from recorder.chunk_jobs import BuildOptions, ChunkJobs, shot_specs, thumb_name
from recorder.chunks import THUMB_EVERY_S, Ledger, Span, changed, chunk_lock, spans
from recorder.manifest import FORMAT, MANIFEST, file_entry
from recorder.mux import join_chunks
from recorder.progress import read_progress
from recorder.render import render_chunk
from recorder.timeline import Capture, CaptureError, load_capture

__all__ = ["BuildAborted", "BuildBusy", "BuildOptions", "build_archive", "is_building"]

logger = logging.getLogger(__name__)

LOCK = ".build.lock"
OUTPUTS = ("lesson.mp4", "poster.jpg", "thumbs")
ANALYSIS = "analysis.json"
ProgressFn = Callable[[str, float], None]  # (stage, fraction of the whole build done)


class BuildBusy(Exception):
    """Another build of the same directory is running."""


@contextlib.contextmanager
def build_lock(directory: Path) -> Iterator[None]:
    path = directory / LOCK
    with path.open("a") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            raise BuildBusy(f"{directory}: another build is running") from exc
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def is_building(directory: Path) -> bool:
    path = directory / LOCK
    if not path.exists():
        return False
    with path.open("a") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(f, fcntl.LOCK_UN)
    return False


def _thumb_times(duration: float) -> list[float]:
    """About a hundred at most, on the grid the chunks render thumbnails on."""
    step = THUMB_EVERY_S * max(1, math.ceil(duration / (100 * THUMB_EVERY_S)))
    return [i * step for i in range(int(duration // step) + 1) if i * step < duration - 0.5] or [0.0]


def _poster_time(duration: float, shots: list[director.Shot]) -> float:
    """A quarter into the lesson, moved into a shot that shows a classroom if possible."""
    want = min(duration * 0.25, 60.0)
    for shot in shots:
        if shot.layout.large and shot.end > want:
            return max(want, shot.start + 0.5) if shot.start + 0.5 < shot.end else shot.start
    return want


class BuildAborted(Exception):
    """The build was told to stop (SIGTERM) or the server that started it is gone."""


class _Progress:
    """Sums what the workers report in their progress files into one fraction of the build."""

    def __init__(self, fn: ProgressFn | None, work: Path, weights: dict[str, float], totals: dict[str, float]) -> None:
        self.fn = fn
        self.work = work
        self.weights = weights
        self.totals = totals
        self.done = {k: 0.0 for k in weights}
        self.base: dict[str, float] = {}

    def poll(self) -> None:
        for stage in self.weights:
            files = list(self.work.glob(f"{stage}-*.progress"))
            if files:
                reported = min(self.totals[stage], self.base.get(stage, 0.0) + sum(read_progress(f) for f in files))
                self.done[stage] = max(self.done[stage], reported)
        self.report()

    def add_done(self, stage: str, amount: float) -> None:
        """Work that needed no doing (a chunk reused from the ledger)."""
        self.base[stage] = self.base.get(stage, 0.0) + amount
        self.done[stage] = max(self.done[stage], self.base[stage])
        self.report()

    def finish_one(self, stage: str) -> None:
        self.add_done(stage, 1)

    def finish(self, stage: str) -> None:
        self.done[stage] = self.totals[stage]
        self.report()

    def report(self) -> None:
        if self.fn is None:
            return
        total = sum(self.weights.values())
        frac = sum(self.weights[k] * self.done[k] / max(self.totals[k], 1e-9) for k in self.weights) / total
        stage = next((k for k in self.weights if self.done[k] < self.totals[k]), "done")
        self.fn(stage, min(1.0, frac))


def _wait(futures: list[Future[Any]], progress: _Progress, parent_pid: int | None) -> list[Any]:
    """Wait for the workers, reporting progress; stop if the server that started us is gone."""
    while not all(f.done() for f in futures):
        time.sleep(0.2)
        progress.poll()
        if parent_pid is not None and os.getppid() != parent_pid:
            raise BuildAborted("the server that started this build is gone")
    progress.poll()
    return [f.result() for f in futures]


def _kill(pool: ProcessPoolExecutor) -> None:
    """Stop the workers now (the executor itself would wait for their current jobs)."""
    processes = getattr(pool, "_processes", None) or {}
    for process in list(processes.values()):
        with contextlib.suppress(Exception):
            process.kill()
    pool.shutdown(wait=False, cancel_futures=True)


def build_archive(directory: Path, options: BuildOptions | None = None,
                  on_progress: ProgressFn | None = None) -> dict[str, Any]:
    """Build (or rebuild) the archive in `directory`; returns the manifest."""
    options = options or BuildOptions()
    directory = directory.resolve()
    with build_lock(directory), chunk_lock(directory, wait=True):  # the live worker finishes its step first
        return _build(directory, options, on_progress)


def _build(directory: Path, options: BuildOptions, on_progress: ProgressFn | None) -> dict[str, Any]:
    work = directory / ".build"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir()
    try:
        return _build_in(directory, work, options, on_progress)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _build_in(directory: Path, work: Path, options: BuildOptions, on_progress: ProgressFn | None) -> dict[str, Any]:
    started = time.perf_counter()
    capture = load_capture(directory)
    duration = capture.duration
    if duration < 0.5 or not capture.tracks:
        raise CaptureError(f"{directory}: nothing was recorded ({duration:.1f} s, {len(capture.tracks)} tracks)")
    fps = options.fps
    frames = max(1, round(duration * fps))
    ledger = Ledger(directory)
    jobs = ChunkJobs(capture, options, ledger)
    plan = spans(frames, fps)
    progress = _Progress(on_progress, work, weights={"audio": 0.15, "video": 0.8, "mux": 0.05},
                         totals={"audio": len(plan), "video": frames, "mux": 1})
    # fork: workers inherit the imports, so they start at once (the pool forks them all before
    # it starts any thread of its own)
    pool = ProcessPoolExecutor(options.processes, mp_context=multiprocessing.get_context("fork"))
    try:
        shots, stats = _chunks(pool, jobs, plan, options, work, progress)
    except BaseException:
        _kill(pool)
        raise
    pool.shutdown(wait=True)
    lesson_tmp = work / "lesson.mp4"
    join_chunks([(s.first, ledger.file(f"video-{s.index:04d}.mp4")) for s in plan],
         [(int(ledger.data["audio"][str(s.index)]["first_pts"]), ledger.file(f"audio-{s.index:04d}.mp4"))
          for s in plan], fps, lesson_tmp)
    progress.finish("mux")
    poster = _poster(ledger, plan, min(frames - 1, round(_poster_time(duration, shots) * fps)), work / "poster.jpg")
    thumbs = _thumbs(ledger, duration, work / "thumbs")
    analysis = _analysis(capture, jobs, plan, work / ANALYSIS)
    for name in (*OUTPUTS, ANALYSIS):
        target = directory / name
        if target.is_dir():
            shutil.rmtree(target)
        elif target.exists():
            target.unlink()
        if (work / name).exists():
            os.replace(work / name, target)
    stats["seconds"] = time.perf_counter() - started
    manifest = _manifest(capture, shots, fps, thumbs, stats, poster=poster, analysis=analysis)
    write_json_atomic(directory / MANIFEST, manifest)
    return manifest


def _chunks(pool: ProcessPoolExecutor, jobs: ChunkJobs, plan: list[Span], options: BuildOptions, work: Path,
            progress: _Progress) -> tuple[list[director.Shot], dict[str, Any]]:
    """Every chunk's sound, the director's shots, every chunk's pictures: reused or built."""
    reused = {"audio": 0, "video": 0}
    rebuilt: dict[str, list[str]] = {}  # chunks built before whose inputs changed since: which
    # 1. sound (levels for the director, voice activity, the mix) for the chunks not built yet
    pending = []
    for span in plan:
        key, sound = jobs.audio_job(span)
        if jobs.ledger.get("audio", span, key) is not None:
            reused["audio"] += 1
            progress.finish_one("audio")
        else:
            _note_rebuilt(rebuilt, jobs.ledger, "audio", span, key)
            pending.append((span, key, pool.submit(render_audio_chunk, sound)))
    for (span, key, _f), result in zip(pending, _wait([f for _s, _k, f in pending], progress, options.parent_pid),
                                       strict=True):
        jobs.record_audio(span, key, result)
        progress.finish_one("audio")
    # 2. the shots, decided over the whole lesson
    shots = jobs.shots(jobs.arrays(plan, "levels"))
    specs = shot_specs(shots)
    # 3. pictures, in parallel
    threads = 1 if options.processes > 1 else 0
    todo = []
    for span in plan:
        key, job = jobs.video_job(span, specs, threads)
        if jobs.ledger.get("video", span, key) is not None:
            reused["video"] += 1
            progress.add_done("video", span.last - span.first)
            continue
        _note_rebuilt(rebuilt, jobs.ledger, "video", span, key)
        job.progress = str(work / f"video-{span.index}.progress")
        todo.append((span, key, job, pool.submit(render_chunk, job)))
    results = _wait([t[3] for t in todo], progress, options.parent_pid)
    for (span, key, job, _f), result in zip(todo, results, strict=True):
        jobs.record_video(span, key, job, result)
    progress.finish("video")
    decoded: dict[str, int] = {}
    errors: dict[str, int] = {}
    for span in plan:
        entry = jobs.ledger.data["video"][str(span.index)]
        for k, n in entry.get("decoded", {}).items():
            decoded[k] = decoded.get(k, 0) + n
        for k, n in entry.get("decode_errors", {}).items():
            errors[k] = errors.get(k, 0) + n
    return shots, {"chunks": len(plan), "chunks_reused": reused, "chunks_changed": rebuilt,
                   "decoded_frames": decoded, "decode_errors": errors}


def _note_rebuilt(rebuilt: dict[str, list[str]], ledger: Ledger, kind: str, span: Span, key: str) -> None:
    entry = ledger.data[kind].get(str(span.index))
    if entry is not None:
        rebuilt[f"{kind} {span.index}"] = changed(str(entry.get("key", "")), key) or ["files missing"]


def _poster(ledger: Ledger, plan: list[Span], frame: int, out: Path) -> bool:
    """The poster: frame `frame` of the archive, decoded from the chunk that holds it."""
    span = next(s for s in plan if s.first <= frame < s.last)
    with av.open(str(ledger.file(f"video-{span.index:04d}.mp4"))) as container:
        for i, picture in enumerate(container.decode(video=0)):
            if i == frame - span.first:
                return bool(cv2.imwrite(str(out), picture.to_ndarray(format="bgr24"), [cv2.IMWRITE_JPEG_QUALITY, 85]))
    return False


def _thumbs(ledger: Ledger, duration: float, out: Path) -> list[dict[str, Any]]:
    out.mkdir(exist_ok=True)
    thumbs = []
    for i, t in enumerate(_thumb_times(duration)):
        source = ledger.file(thumb_name(t))
        if source.exists():
            shutil.copyfile(source, out / f"{i:04d}.jpg")
            thumbs.append({"t": round(t, 3), "file": f"thumbs/{i:04d}.jpg"})
    return thumbs


def _analysis(capture: Capture, jobs: ChunkJobs, plan: list[Span], out: Path) -> bool:
    """The classroom analysis from the chunks' voice activity (computed while recording)."""
    options = AnalysisOptions()
    speech = jobs.arrays(plan, "speech")
    rooms = [Room(str(c["id"]), str(c.get("name") or c["id"]), str(c.get("role", "rural")))
             for c in capture.classrooms()]
    segments = {r.id: speech_segments(speech[r.id], options) if r.id in speech else [] for r in rooms}
    result = analyze(rooms, segments, [e.to_json() for e in capture.events], capture.duration, options)
    result["recording"] = capture.directory.name
    write_json_atomic(out, result)
    return True

def _manifest(capture: Capture, shots: list[director.Shot], fps: int, thumbs: list[dict[str, Any]],
              stats: dict[str, Any], *, poster: bool, analysis: bool) -> dict[str, Any]:
    directory = capture.directory
    lesson = capture.lesson
    files = [file_entry(directory, "lesson.mp4", "video")]
    if poster:
        files.append(file_entry(directory, "poster.jpg", "poster"))
    files += [file_entry(directory, t["file"], "thumbnail") for t in thumbs if (directory / t["file"]).exists()]
    if analysis:
        files.append(file_entry(directory, ANALYSIS, "analysis"))
    files += [file_entry(directory, t.rel, "track") for t in capture.tracks]
    for name in ("session.json", "events.jsonl", "tracks.jsonl", "ended.json"):
        if (directory / "capture" / name).exists():
            files.append(file_entry(directory, f"capture/{name}", "capture"))

    def when(ts: float) -> str:
        return datetime.fromtimestamp(ts, UTC).isoformat()

    seconds = stats.pop("seconds")
    return {
        "format": FORMAT,
        "recording": capture.recording_id,
        "lesson": {k: lesson.get(k) for k in ("id", "title", "subject", "grade", "planned_start", "planned_end")},
        "classrooms": capture.classrooms(),
        "start": when(capture.t0),
        "end": when(capture.end),
        "started_at": capture.t0,
        "ended_at": capture.end,
        "duration_s": round(capture.duration, 3),
        "complete": capture.complete,
        "end_reason": capture.end_reason,
        "video": {"file": "lesson.mp4", "width": 1280, "height": 720, "fps": fps, "video_codec": "h264",
                  "audio_codec": "aac", "audio_rate": 48000},
        "poster": "poster.jpg" if poster else None,
        "thumbnails": thumbs,
        "analysis": ANALYSIS if analysis else None,
        "shots": [s.to_json() for s in shots],
        "events": [e.to_json() for e in capture.events],
        "tracks": [t.to_json() for t in capture.tracks],
        "files": files,
        "warnings": capture.warnings,
        "build": {"at": datetime.now(UTC).isoformat(), "seconds": round(seconds, 2),
                  "speed": round(capture.duration / max(seconds, 1e-6), 2), **stats},
    }
