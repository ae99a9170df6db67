"""Building the archive of a recording directory: lesson.mp4, poster, thumbnails, manifest.json.

    capture/ ──levels (per microphone, in parallel)──▶ director ──▶ shots
             ──mix──▶ AAC                 ┐
             ──render chunks (parallel)──▶ H.264 ├─▶ lesson.mp4 (+faststart) ─▶ manifest.json
                                          ┘
Everything heavy runs in worker processes (one per core by default), so a build never holds
the lesson server's event loop; the server starts builds as a separate process anyway.
A lock file keeps two builds of one directory from running at once.
"""

from __future__ import annotations

import contextlib
import fcntl
import heapq
import logging
import math
import multiprocessing
import os
import shutil
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import av

from recorder import director
from recorder.audio import AudioSource, levels, mix_to_aac
from recorder.capture import write_json_atomic
from recorder.manifest import FORMAT, MANIFEST, file_entry
from recorder.progress import ProgressFile, read_progress
from recorder.render import ChunkJob, SegmentSpec, ShotSpec, SourceSpec, render_chunk
from recorder.timeline import Capture, CaptureError, load_capture

logger = logging.getLogger(__name__)

LOCK = ".build.lock"
OUTPUTS = ("lesson.mp4", "poster.jpg", "thumbs")
CHUNK_S = 60.0
ProgressFn = Callable[[str, float], None]  # (stage, fraction of the whole build done)


class BuildBusy(Exception):
    """Another build of the same directory is running."""


@dataclass
class BuildOptions:
    fps: int = 15
    workers: int = 0  # 0: one per core
    preset: str = "ultrafast"
    crf: int = 23
    min_shot_s: float = director.MIN_SHOT_S
    parent_pid: int | None = None  # stop if this process (the server) goes away

    @property
    def processes(self) -> int:
        return self.workers or max(1, os.cpu_count() or 1)


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


def _audio_sources(capture: Capture) -> list[AudioSource]:
    out = []
    for c in capture.classrooms():
        files = capture.tracks_of(c["id"], "mic")
        if files:
            out.append(AudioSource(c["id"], [str(t.path) for t in files], capture.offset))
    return out


def _video_sources(capture: Capture) -> dict[str, SourceSpec]:
    out: dict[str, SourceSpec] = {}
    for track in capture.tracks:
        if track.kind != "video":
            continue
        key = f"{track.classroom}:{track.source}"
        spec = out.get(key)
        if spec is None:
            label = capture.name_of(track.classroom)
            if track.source == "courseware":
                label = f"{label} · 课件 courseware"
            spec = out[key] = SourceSpec(key, label, [])
        spec.segments.append(SegmentSpec(str(track.path), capture.offset, track.start, track.end, track.width,
                                         track.height, track.keyframes))
    return out


def _thumb_times(duration: float) -> list[float]:
    step = max(5.0, math.ceil(duration / 100))
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

    def poll(self) -> None:
        for stage in self.weights:
            files = list(self.work.glob(f"{stage}-*.progress"))
            if files:
                reported = min(self.totals[stage], sum(read_progress(f) for f in files))
                self.done[stage] = max(self.done[stage], reported)
        self.report()

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


def _mix_job(sources: list[AudioSource], duration: float, out: str, progress_path: str) -> None:
    report = ProgressFile(progress_path)
    mix_to_aac(sources, duration, Path(out), progress=report.add)
    report.flush()


def _levels_job(source: AudioSource, duration: float, progress_path: str) -> Any:
    result = levels(source, duration)
    ProgressFile(progress_path).add(duration, flush=True)
    return result


def build_archive(directory: Path, options: BuildOptions | None = None,
                  on_progress: ProgressFn | None = None) -> dict[str, Any]:
    """Build (or rebuild) the archive in `directory`; returns the manifest."""
    options = options or BuildOptions()
    directory = directory.resolve()
    with build_lock(directory):
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
    audio_sources = _audio_sources(capture)
    video_sources = _video_sources(capture)
    progress = _Progress(
        on_progress, work,
        weights={"levels": 0.1, "video": 0.8, "audio": 0.05, "mux": 0.05},
        totals={"levels": duration * max(1, len(audio_sources)), "video": frames, "audio": duration, "mux": 1},
    )
    processes = options.processes
    # fork: workers inherit the imports, so they start at once (the pool forks them all before
    # it starts any thread of its own)
    pool = ProcessPoolExecutor(processes, mp_context=multiprocessing.get_context("fork"))
    try:
        shots, chunk_paths, thumb_frames, results = _render_all(
            pool, capture, options, work, audio_sources, video_sources, frames, progress)
    except BaseException:
        _kill(pool)
        raise
    pool.shutdown(wait=True)
    chunk_stats = results[1:]
    # 4. one file a browser can play and seek while it downloads
    lesson_tmp = work / "lesson.mp4"
    _mux(chunk_paths, fps, work / "audio.mp4", lesson_tmp)
    progress.finish("mux")
    for name in OUTPUTS:
        target = directory / name
        if target.is_dir():
            shutil.rmtree(target)
        elif target.exists():
            target.unlink()
        if (work / name).exists():
            os.replace(work / name, target)
    thumbs = [{"t": round(thumb_frames[n], 3), "file": f"thumbs/{i:04d}.jpg"}
              for i, n in enumerate(sorted(thumb_frames))]
    manifest = _manifest(capture, shots, fps, thumbs, time.perf_counter() - started, chunk_stats)
    write_json_atomic(directory / MANIFEST, manifest)
    return manifest


def _render_all(pool: ProcessPoolExecutor, capture: Capture, options: BuildOptions, work: Path,
                audio_sources: list[AudioSource], video_sources: dict[str, SourceSpec], frames: int,
                progress: _Progress) -> tuple[list[director.Shot], list[tuple[int, Path]], dict[int, float], list[Any]]:
    duration, fps, processes = capture.duration, options.fps, options.processes
    # 1. how loud each microphone is, for the director
    level_futures = [pool.submit(_levels_job, s, duration, str(work / f"levels-{i}.progress"))
                     for i, s in enumerate(audio_sources)]
    level_results = _wait(level_futures, progress, options.parent_pid) if level_futures else []
    mic_levels = {s.classroom: lv for s, lv in zip(audio_sources, level_results, strict=True)}
    progress.finish("levels")
    # 2. the shots
    shots = director.direct(capture, mic_levels, min_shot_s=options.min_shot_s)
    # 3. sound and picture, in parallel
    audio_out = work / "audio.mp4"
    futures: list[Future[Any]] = [pool.submit(_mix_job, audio_sources, duration, str(audio_out),
                                              str(work / "audio-0.progress"))]
    thumbs_dir = work / "thumbs"
    thumb_frames = {min(frames - 1, round(t * fps)): t for t in _thumb_times(duration)}
    poster_frame = min(frames - 1, round(_poster_time(duration, shots) * fps))
    n_chunks = max(1, min(processes * 4, math.ceil(duration / CHUNK_S)))
    if n_chunks < processes and duration > 8:
        n_chunks = processes
    bounds = [round(frames * k / n_chunks) for k in range(n_chunks + 1)]
    shot_specs = [ShotSpec(s.start, s.end, s.layout.large, s.layout.inset) for s in shots]
    chunk_paths = []
    for k in range(n_chunks):
        first, last = bounds[k], bounds[k + 1]
        if last <= first:
            continue
        path = work / f"video-{k:03d}.mp4"
        chunk_paths.append((first, path))
        job = ChunkJob(
            index=k, out=str(path), first=first, last=last, fps=fps, shots=shot_specs,
            sources=video_sources, title=str(capture.lesson.get("title", "")),
            thumbs=[(n, str(thumbs_dir / f"{i:04d}.jpg")) for i, n in enumerate(sorted(thumb_frames))
                    if first <= n < last],
            poster=(poster_frame, str(work / "poster.jpg")) if first <= poster_frame < last else None,
            preset=options.preset, crf=options.crf, threads=1 if processes > 1 else 0,
            progress=str(work / f"video-{k}.progress"),
        )
        futures.append(pool.submit(render_chunk, job))
    results = _wait(futures, progress, options.parent_pid)
    progress.finish("audio")
    progress.finish("video")
    return shots, chunk_paths, thumb_frames, results


def _mux(chunks: list[tuple[int, Path]], fps: int, audio: Path, out: Path) -> None:
    """Join the chunks' H.264 and the AAC into one .mp4 with its index at the front."""
    inputs = [(first, av.open(str(path))) for first, path in chunks]
    audio_in = av.open(str(audio))
    try:
        output = av.open(str(out), "w", format="mp4", options={"movflags": "+faststart"})
        v_template = inputs[0][1].streams.video[0]
        ov = output.add_stream_from_template(v_template)
        oa = output.add_stream_from_template(audio_in.streams.audio[0])

        def video() -> Iterator[tuple[float, int, Any]]:
            for first, container in inputs:
                stream: Any = container.streams.video[0]
                tb = stream.time_base
                shift = round(first / fps / tb)
                for packet in container.demux(stream):
                    if packet.dts is None:
                        continue
                    packet.pts += shift
                    packet.dts += shift
                    packet.stream = ov
                    yield float(packet.dts * tb), 0, packet

        def sound() -> Iterator[tuple[float, int, Any]]:
            stream: Any = audio_in.streams.audio[0]
            for packet in audio_in.demux(stream):
                if packet.dts is None:
                    continue
                packet.stream = oa
                yield float(packet.dts * stream.time_base), 1, packet

        for _t, _k, packet in heapq.merge(video(), sound(), key=lambda x: (x[0], x[1])):
            output.mux(packet)
        output.close()
    finally:
        for _first, container in inputs:
            container.close()
        audio_in.close()


def _manifest(capture: Capture, shots: list[director.Shot], fps: int, thumbs: list[dict[str, Any]],
              seconds: float, chunk_stats: list[Any]) -> dict[str, Any]:
    directory = capture.directory
    lesson = capture.lesson
    files = [file_entry(directory, "lesson.mp4", "video")]
    if (directory / "poster.jpg").exists():
        files.append(file_entry(directory, "poster.jpg", "poster"))
    files += [file_entry(directory, t["file"], "thumbnail") for t in thumbs if (directory / t["file"]).exists()]
    files += [file_entry(directory, t.rel, "track") for t in capture.tracks]
    for name in ("session.json", "events.jsonl", "tracks.jsonl", "ended.json"):
        if (directory / "capture" / name).exists():
            files.append(file_entry(directory, f"capture/{name}", "capture"))
    decoded: dict[str, int] = {}
    errors: dict[str, int] = {}
    for stat in chunk_stats:
        for key, n in (stat or {}).get("decoded", {}).items():
            decoded[key] = decoded.get(key, 0) + n
        for key, n in (stat or {}).get("decode_errors", {}).items():
            errors[key] = errors.get(key, 0) + n

    def when(ts: float) -> str:
        return datetime.fromtimestamp(ts, UTC).isoformat()

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
        "poster": "poster.jpg" if (directory / "poster.jpg").exists() else None,
        "thumbnails": thumbs,
        "shots": [s.to_json() for s in shots],
        "events": [e.to_json() for e in capture.events],
        "tracks": [t.to_json() for t in capture.tracks],
        "files": files,
        "warnings": capture.warnings,
        "build": {"at": datetime.now(UTC).isoformat(), "seconds": round(seconds, 2),
                  "speed": round(capture.duration / max(seconds, 1e-6), 2), "decoded_frames": decoded,
                  "decode_errors": errors},
    }
