"""What there is to build for a capture, chunk by chunk: shared by the live chunk worker and the final build.

For a capture (complete, or still growing) `ChunkJobs` gives each chunk's sound job and, once
the director has decided, each chunk's video job, both with their fingerprints; it knows which
the ledger already holds and records the ones just built.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from recorder import director
from recorder.audio import LEVEL_HZ, RATE, AudioSource, decoded_blocks, mix_gain, window_levels
from recorder.chunk_audio import AudioChunkJob, decode_from, load_arrays
from recorder.chunks import CHUNK_S, THUMB_EVERY_S, Ledger, Span, audio_key, shots_in, video_key
from recorder.render import ChunkJob, SegmentSpec, ShotSpec, SourceSpec
from recorder.timeline import Capture


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

    def settings(self) -> dict[str, Any]:
        """What a video chunk's encoding depends on (part of its fingerprint)."""
        return {"preset": self.preset, "crf": self.crf, "min_shot_s": self.min_shot_s}


def audio_sources(capture: Capture) -> list[AudioSource]:
    out = []
    for c in capture.classrooms():
        files = capture.tracks_of(c["id"], "mic")
        if files:
            out.append(AudioSource(c["id"], [str(t.path) for t in files], capture.offset))
    return out


def video_sources(capture: Capture) -> dict[str, SourceSpec]:
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


def thumb_name(t: float) -> str:
    return f"thumbs/{round(t):05d}.jpg"


class ChunkJobs:
    def __init__(self, capture: Capture, options: BuildOptions, ledger: Ledger) -> None:
        self.capture = capture
        self.options = options
        self.ledger = ledger
        self.duration = capture.duration
        self.fps = options.fps
        self.audio = audio_sources(capture)
        self.video = video_sources(capture)
        self.gain = mix_gain(len(capture.classrooms()))
        self.total_samples = max(1, round(self.duration * RATE))
        self._mic_files = {c["id"]: [(t.path.name, t.start) for t in capture.tracks_of(c["id"], "mic")]
                           for c in capture.classrooms()}

    # -- sound -----------------------------------------------------------------------------------

    def audio_job(self, span: Span) -> tuple[str, AudioChunkJob]:
        key = audio_key(span, self._mic_files, self.capture.offset, self.total_samples, self.gain)
        name = f"audio-{span.index:04d}"
        return key, AudioChunkJob(span, self.audio, self.duration, self.gain, str(self.ledger.file(name + ".mp4")),
                                  str(self.ledger.file(name + ".npz")))

    def record_audio(self, span: Span, key: str, result: dict[str, Any]) -> None:
        name = f"audio-{span.index:04d}"
        self.ledger.put("audio", span, {"key": key, "files": [name + ".mp4", name + ".npz"],
                                        "first_pts": result["first_pts"], "packets": result["packets"]})

    def arrays(self, spans: list[Span], prefix: str) -> dict[str, np.ndarray]:
        """Per classroom, the chunks' `levels` or `speech` arrays joined (chunks must be built)."""
        parts: dict[str, list[np.ndarray]] = {s.classroom: [] for s in self.audio}
        for span in spans:
            data = load_arrays(self.ledger.file(f"audio-{span.index:04d}.npz"))
            for classroom in parts:
                parts[classroom].append(data[f"{prefix}:{classroom}"])
        return {c: np.concatenate(p) if p else np.zeros(0, np.float32) for c, p in parts.items()}

    def tail_levels(self, built: int) -> dict[str, np.ndarray]:
        """Levels after the first `built` chunks, to the end of a growing capture (not kept).

        Each chunk's part is decoded from where that chunk's own sound job will decode, so the
        levels are those the chunk will have (but for the last, still incomplete, 100 ms)."""
        per = round(CHUNK_S * LEVEL_HZ)
        total = int(self.duration * LEVEL_HZ)
        out: dict[str, list[np.ndarray]] = {s.classroom: [] for s in self.audio}
        k = built
        while k * per < total:
            span = Span(k, round(k * CHUNK_S * self.fps), round((k + 1) * CHUNK_S * self.fps), self.fps, False)
            count = min(per, total - k * per)
            for s in self.audio:
                blocks = list(decoded_blocks(s, since_s=decode_from(span) / RATE, until_s=(k + 1) * CHUNK_S + 1))
                out[s.classroom].append(window_levels(blocks, k * per, count))
            k += 1
        return {c: np.concatenate(p) if p else np.zeros(0, np.float32) for c, p in out.items()}

    # -- pictures --------------------------------------------------------------------------------

    def shots(self, levels: dict[str, np.ndarray]) -> list[director.Shot]:
        return director.direct(self.capture, levels, min_shot_s=self.options.min_shot_s)

    def video_job(self, span: Span, shots: list[ShotSpec], threads: int) -> tuple[str, ChunkJob]:
        inside = shots_in(shots, span)
        key = video_key(span, inside, self.video, self.options.settings())
        thumbs = []
        t = np.ceil(span.start / THUMB_EVERY_S) * THUMB_EVERY_S
        while t < span.end - 1e-9:
            thumbs.append((round(t * self.fps), str(self.ledger.file(thumb_name(t)))))
            t += THUMB_EVERY_S
        self.ledger.file("thumbs").mkdir(exist_ok=True)
        job = ChunkJob(index=span.index, out=str(self.ledger.file(f"video-{span.index:04d}.mp4")), first=span.first,
                       last=span.last, fps=self.fps, shots=inside, sources=self.video,
                       title=str(self.capture.lesson.get("title", "")), thumbs=thumbs, preset=self.options.preset,
                       crf=self.options.crf, threads=threads)
        return key, job

    def record_video(self, span: Span, key: str, job: ChunkJob, result: dict[str, Any]) -> None:
        files = [Path(job.out).name] + [Path(p).relative_to(self.ledger.dir).as_posix() for _n, p in job.thumbs]
        self.ledger.put("video", span, {"key": key, "files": files, "frames": job.last - job.first,
                                        "decoded": result.get("decoded", {}),
                                        "decode_errors": result.get("decode_errors", {})})


def shot_specs(shots: list[director.Shot]) -> list[ShotSpec]:
    return [ShotSpec(s.start, s.end, s.layout.large, s.layout.inset) for s in shots]
