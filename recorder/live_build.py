"""The chunk worker: builds the archive's chunks while lessons are being recorded.

One process for the whole server (``python -m recorder chunks --root <data>/recordings``), at
the lowest priority Linux has: SCHED_IDLE (it runs only on CPU time nothing else wants), nice
19, idle I/O class, one thread (x264, OpenCV and the decoders single-threaded), so the live
lessons' forwarding never waits for it. It goes round the recordings in progress, one step
each in turn (one chunk's sound, or one chunk's pictures), so several lessons recorded at once
share it fairly; each recording's ``.chunks/status.json`` says how far behind live it is.

A chunk is built once the capture has run far enough past its end that nothing recorded later
can change it: its sound after AUDIO_SETTLE_S, its pictures after LOOKAHEAD_S (the director's
speech detection looks 15 s ahead, its 2 s minimum shot a few seconds more). When every
classroom has left, the lesson is probably over: every chunk but the (short) last one is built
at once, so the final build usually finds only that one to do.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

from recorder.chunk_audio import render_audio_chunk
from recorder.chunk_jobs import BuildOptions, ChunkJobs, shot_specs
from recorder.chunks import (
    AUDIO_SETTLE_S,
    CHUNK_S,
    LOOKAHEAD_S,
    Ledger,
    Span,
    chunk_lock,
    spans,
    stable_spans,
    write_status,
)
from recorder.render import render_chunk
from recorder.timeline import Capture, CaptureError, initial_state, load_capture

logger = logging.getLogger(__name__)

REPLAN_S = 10.0  # a recording that had nothing due is read again at most this often (0: every step)
REUSE_S = 20.0  # after a step that built something, the next one keeps the capture read this recently


def lower_priority() -> list[str]:
    """SCHED_IDLE + nice 19 + idle I/O for this process: every thread it has (libraries start
    some when imported) and, inherited, every thread it starts later."""
    done = set()
    tids = [int(t) for t in os.listdir("/proc/self/task")] if os.path.isdir("/proc/self/task") else [0]
    for tid in tids:
        with contextlib.suppress(OSError):
            os.setpriority(os.PRIO_PROCESS, tid, 19)  # per thread on Linux
            done.add("nice 19")
        with contextlib.suppress(OSError, AttributeError):
            os.sched_setscheduler(tid, os.SCHED_IDLE, os.sched_param(0))
            done.add("SCHED_IDLE")
    if shutil.which("ionice"):
        result = subprocess.run(["ionice", "-c", "3", "-p", str(os.getpid())], capture_output=True, check=False)
        if result.returncode == 0:
            done.add("ionice idle")
    import cv2

    cv2.setNumThreads(1)
    return sorted(done)


def nobody_left(capture: Capture) -> bool:
    """Every classroom that joined has left (the lesson is probably over)."""
    here = {c.get("classroom") for c in initial_state(capture.directory).get("classrooms", [])}
    joined = bool(here)
    for e in sorted(capture.events, key=lambda e: e.t):
        if e.name == "classroom_joined":
            here.add(e.data.get("classroom"))
            joined = True
        elif e.name == "classroom_left":
            here.discard(e.data.get("classroom"))
    return joined and not here


class LiveRecording:
    """The chunk worker's view of one recording in progress."""

    def __init__(self, directory: Path, options: BuildOptions, replan_s: float = REPLAN_S) -> None:
        self.directory = directory
        self.replan_s = replan_s
        self.options = options
        self.jobs: ChunkJobs | None = None
        self.loaded_at = 0.0
        self.idle = False  # the last step found nothing to do
        self.wake_at = 0.0  # ... and the next chunk falls due about then (monotonic time)
        self.events_stamp: tuple[int, int] | None = None
        self.scans: dict[str, dict[str, Any]] = {}  # track scans so far: a new read only reads what was added
        self.steps = 0

    def _load(self) -> ChunkJobs:
        capture = load_capture(self.directory, self.scans)
        self.loaded_at = time.monotonic()
        return ChunkJobs(capture, self.options, Ledger(self.directory))

    def _events(self) -> tuple[int, int] | None:
        with contextlib.suppress(OSError):
            st = (self.directory / "capture" / "events.jsonl").stat()
            return st.st_mtime_ns, st.st_size
        return None

    def step(self) -> bool:
        """Build one thing that is due; False when nothing is (or the final build holds the chunks).

        Reading a capture scans every track file, so a recording with nothing due is read
        again only when its next chunk falls due, or when something happened (a classroom left)."""
        now = time.monotonic()
        if self.idle and self.replan_s and (now < self.wake_at or now - self.loaded_at < self.replan_s) \
                and self._events() == self.events_stamp:
            return False
        with chunk_lock(self.directory, wait=False) as mine:
            if not mine:
                return False
            if self.jobs is None or self.idle or not self.replan_s or now - self.loaded_at > REUSE_S:
                self.events_stamp = self._events()
                self.jobs = self._load()  # the capture grew since it was read
            did = self._step(self.jobs)
        self.idle = not did
        self.steps += did
        return did

    def _due(self, jobs: ChunkJobs) -> tuple[list[Span], list[Span], bool]:
        duration, fps = jobs.duration, self.options.fps
        if nobody_left(jobs.capture):
            # all but the last chunk: its end depends on the capture's last half second, which
            # the writer keeps in memory until the recording stops
            settled = spans(max(1, round(duration * fps)), fps)[:-1]
            return settled, settled, True
        return (stable_spans(duration, fps, duration - AUDIO_SETTLE_S),
                stable_spans(duration, fps, duration - LOOKAHEAD_S), False)

    def _step(self, jobs: ChunkJobs) -> bool:
        if jobs.duration < 0.5 or not jobs.capture.tracks:
            return False
        audio, video, over = self._due(jobs)
        for span in audio:
            key, job = jobs.audio_job(span)
            if jobs.ledger.get("audio", span, key) is None:
                jobs.record_audio(span, key, render_audio_chunk(job))
                return True
        built = self._video(jobs, audio, video)
        self._status(jobs, built, "waiting for the lesson to end" if over else "recording")
        if built is not None and built >= 0:
            return True
        # nothing due: the next chunk's sound or pictures fall due when the capture has grown this much
        due = min((len(audio) + 1) * CHUNK_S + AUDIO_SETTLE_S, (len(video) + 1) * CHUNK_S + LOOKAHEAD_S)
        grow = due - jobs.duration
        self.wake_at = time.monotonic() + (self.replan_s if over else max(1.0, grow))
        return False

    def _video(self, jobs: ChunkJobs, audio: list[Span], video: list[Span]) -> int | None:
        """Render the first video chunk due; its index, -1 if none was due, None if nothing can be yet."""
        if not video:
            return None
        # the built chunks' levels, then those of the rest of the capture so far
        levels = jobs.arrays(audio, "levels") if audio else {}
        tail = jobs.tail_levels(len(audio))
        levels = {c: _join(levels.get(c), tail.get(c)) for c in {*levels, *tail}}
        shots = shot_specs(jobs.shots(levels))
        for span in video:
            key, job = jobs.video_job(span, shots, threads=1)
            if jobs.ledger.get("video", span, key) is None:
                jobs.record_video(span, key, job, render_chunk(job))
                return span.index
        return -1

    def _status(self, jobs: ChunkJobs, built: int | None, state: str) -> None:
        entries = jobs.ledger.data["video"]
        count = 0
        while str(count) in entries:
            count += 1
        built_s = min(jobs.duration, count * CHUNK_S)
        write_status(self.directory, jobs.duration, built_s, state=state)


def _join(a: Any, b: Any) -> Any:
    import numpy as np

    parts = [x for x in (a, b) if x is not None]
    return np.concatenate(parts) if parts else np.zeros(0, np.float32)


def live_recordings(root: Path) -> list[Path]:
    """Recording directories whose capture is still going (no ``ended.json`` yet)."""
    out = []
    with contextlib.suppress(OSError):
        for d in sorted(root.iterdir()):
            capture = d / "capture"
            if (capture / "session.json").exists() and not (capture / "ended.json").exists():
                out.append(d)
    return out


class ChunkWorker:
    """Round-robin over the recordings in progress, one step each in turn."""

    def __init__(self, root: Path, options: BuildOptions, poll_s: float = 1.0) -> None:
        self.root = root
        self.options = options
        self.poll_s = poll_s
        self.recordings: dict[Path, LiveRecording] = {}
        self.failures: dict[Path, float] = {}
        self.stopping = False

    def run_round(self) -> int:
        """One step for every live recording that has something due; the number of steps taken."""
        live = live_recordings(self.root)
        for gone in set(self.recordings) - set(live):
            del self.recordings[gone]
        done = 0
        for directory in live:
            if self.stopping:
                break
            if time.monotonic() < self.failures.get(directory, 0.0):
                continue
            rec = self.recordings.setdefault(directory, LiveRecording(directory, self.options))
            try:
                done += rec.step()
            except (CaptureError, OSError, ValueError, RuntimeError) as exc:
                logger.warning("chunks of %s: %s (trying again in 30 s)", directory.name, exc)
                self.failures[directory] = time.monotonic() + 30
        return done

    def run(self) -> None:
        signal.signal(signal.SIGTERM, lambda *_: setattr(self, "stopping", True))
        parent = self.options.parent_pid
        while not self.stopping:
            if parent is not None and os.getppid() != parent:
                logger.info("the server is gone: the chunk worker stops")
                return
            if not self.run_round():
                time.sleep(self.poll_s)
