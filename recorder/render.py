"""Rendering a stretch of the archive video: decode what is shown, compose, encode H.264.

A build splits the lesson into chunks (`recorder.chunks`), rendered while the lesson is recorded
or in parallel worker processes after it; each chunk is an independent H.264 stream that starts
with an IDR frame, so they join without re-encoding.
A source is decoded only while it is on screen: when it comes back, decoding jumps to its
latest keyframe (the recorder asks for one every few seconds) instead of decoding the gap.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import av
import cv2
import numpy as np

from recorder.compose import HEIGHT, WIDTH, Canvas, Rect, inset_rect, large_rect, planes_of
from recorder.progress import ProgressFile

HOLD_S = 3.0  # a frozen source keeps its last picture this long, then shows its name card
LARGE_LABEL_PX = 26
INSET_LABEL_PX = 16
THUMB_SIZE = (320, 180)


@dataclass
class SegmentSpec:
    """One captured file of a video source (picklable, for worker processes)."""

    path: str
    offset: float  # add to a packet time (s) to get video time
    start: float
    end: float
    width: int
    height: int
    keyframes: list[tuple[float, int]]  # (video time, packet index)


@dataclass
class SourceSpec:
    key: str
    label: str
    segments: list[SegmentSpec]

    @property
    def size(self) -> tuple[int, int]:
        for s in self.segments:
            if s.width and s.height:
                return s.width, s.height
        return 16, 9


@dataclass
class ShotSpec:
    start: float
    end: float
    large: str | None
    inset: str | None


@dataclass
class ChunkJob:
    index: int
    out: str
    first: int  # first output frame (inclusive)
    last: int  # last output frame (exclusive)
    fps: int
    shots: list[ShotSpec]
    sources: dict[str, SourceSpec]
    title: str
    thumbs: list[tuple[int, str]] = field(default_factory=list)  # (output frame, jpeg path)
    preset: str = "ultrafast"
    crf: int = 23
    threads: int = 1
    progress: str | None = None  # a progress file: frames rendered so far


class SegmentReader:
    """Decodes one file forward, jumping to a keyframe when that skips work."""

    def __init__(self, spec: SegmentSpec) -> None:
        self.spec = spec
        self._container: Any = None
        self._packets: Any = None
        self._decoder: Any = None
        self._next: tuple[float, Any] | None = None
        self._index = 0  # index of the packet in self._next
        self._exhausted = False
        self.frame: av.VideoFrame | None = None
        self.frame_t = -1.0
        self.decoded = 0
        self.errors = 0

    def _open(self) -> None:
        self._container = av.open(self.spec.path)
        stream = self._container.streams[0]
        self._tb = float(stream.time_base or 0.001)
        self._packets = self._container.demux(stream)
        self._extradata = stream.codec_context.extradata  # H.264 from a finished file: avcC
        self._decoder = self._new_decoder(stream.codec_context.name)
        self._index = -1
        self._pull()

    def _new_decoder(self, name: str) -> Any:
        decoder = av.CodecContext.create(name, "r")
        if self._extradata:
            decoder.extradata = self._extradata
        decoder.thread_count = 1
        return decoder

    def _pull(self) -> None:
        self._next = None
        while not self._exhausted:
            try:
                packet = next(self._packets)
            except (StopIteration, av.FFmpegError, OSError, ValueError):
                self._exhausted = True
                return
            if packet.pts is None or packet.size == 0:
                continue
            self._index += 1
            self._next = (packet.pts * self._tb + self.spec.offset, packet)
            return

    def _jump_target(self, t: float) -> int | None:
        target = None
        for kt, idx in self.spec.keyframes:
            if kt > t + 1e-6:
                break
            if idx > self._index:
                target = idx
        return target

    def advance(self, t: float) -> None:
        if self._container is None:
            self._open()
        if self._next is None or self._next[0] > t + 1e-6:
            return
        target = self._jump_target(t)
        if target is not None:  # skip (demux only) to a keyframe: nothing before it is needed
            while self._next is not None and self._index < target:
                self._pull()
            self._decoder = self._new_decoder(self._decoder.name)
        while self._next is not None and self._next[0] <= t + 1e-6:
            pt, packet = self._next
            try:
                for frame in self._decoder.decode(packet):
                    self.frame, self.frame_t = frame, pt
                    self.decoded += 1
            except av.FFmpegError:
                self.errors += 1  # a damaged frame: keep the last good picture
            self._pull()

    def close(self) -> None:
        if self._container is not None:
            self._container.close()
            self._container = None


class SourceReader:
    """A classroom's picture at any time: the right file, the latest frame no later than t."""

    def __init__(self, spec: SourceSpec) -> None:
        self.spec = spec
        self.readers = [SegmentReader(s) for s in sorted(spec.segments, key=lambda s: s.start)]
        self._planes_for: int | None = None
        self._planes: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None

    def frame_at(self, t: float) -> av.VideoFrame | None:
        reader = None
        for r in self.readers:
            if r.spec.start <= t + 1e-6:
                reader = r
        if reader is None or t > reader.spec.end + HOLD_S:
            return None
        reader.advance(t)
        if reader.frame is None or t - reader.frame_t > HOLD_S:
            return None
        return reader.frame

    def planes(self, frame: av.VideoFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if self._planes_for != id(frame) or self._planes is None:
            if frame.format.name not in ("yuv420p", "yuvj420p") or frame.width % 2 or frame.height % 2:
                frame = frame.reformat(width=frame.width // 2 * 2, height=frame.height // 2 * 2, format="yuv420p")
            self._planes = planes_of(frame.to_ndarray(), frame.width, frame.height)
            self._planes_for = id(frame)
        return self._planes

    @property
    def decoded(self) -> int:
        return sum(r.decoded for r in self.readers)

    @property
    def errors(self) -> int:
        return sum(r.errors for r in self.readers)

    def close(self) -> None:
        for r in self.readers:
            r.close()


def _place(canvas: Canvas, reader: SourceReader | None, spec: SourceSpec | None, t: float, *, inset: bool) -> Rect:
    frame = reader.frame_at(t) if reader is not None else None
    w, h = (frame.width, frame.height) if frame is not None else (spec.size if spec else (16, 9))
    rect = inset_rect(w, h) if inset else large_rect(w, h)
    label = spec.label if spec else ""
    if frame is not None and reader is not None:
        canvas.put(reader.planes(frame), rect)
    else:
        canvas.card(rect, label)
    if inset:
        canvas.border(rect)
        canvas.label(rect, label, INSET_LABEL_PX)
    elif frame is not None:
        canvas.label(rect, label, LARGE_LABEL_PX)
    return rect


def compose_at(canvas: Canvas, shot: ShotSpec, readers: dict[str, SourceReader], sources: dict[str, SourceSpec],
               title: str, t: float) -> None:
    canvas.clear()
    if shot.large is None:
        canvas.card(Rect(0, 0, WIDTH, HEIGHT), title)
        return
    _place(canvas, readers.get(shot.large), sources.get(shot.large), t, inset=False)
    if shot.inset is not None:
        _place(canvas, readers.get(shot.inset), sources.get(shot.inset), t, inset=True)


def render_chunk(job: ChunkJob) -> dict[str, Any]:
    """Render output frames [first, last) to an H.264 .mp4 of their own."""
    started = time.perf_counter()
    readers = {key: SourceReader(spec) for key, spec in job.sources.items()}
    canvas = Canvas()
    tmp = job.out + ".tmp.mp4"  # renamed when complete: a kill -9 never leaves half a chunk
    container = av.open(tmp, "w", format="mp4")
    stream = container.add_stream("libx264", rate=job.fps)
    stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "yuv420p"
    ctx = stream.codec_context
    ctx.options = {"preset": job.preset, "crf": str(job.crf)}
    ctx.gop_size = job.fps * 4
    ctx.thread_count = job.threads
    thumbs = dict(job.thumbs)
    shots = sorted(job.shots, key=lambda s: s.start)
    shot_i = 0
    report = ProgressFile(job.progress) if job.progress else None
    for n in range(job.first, job.last):
        t = n / job.fps
        while shot_i + 1 < len(shots) and t >= shots[shot_i].end - 1e-9:
            shot_i += 1
        frame = canvas.new_frame()
        compose_at(canvas, shots[shot_i], readers, job.sources, job.title, t)
        frame.pts = n - job.first
        for packet in stream.encode(frame):
            container.mux(packet)
        if n in thumbs:
            Path(thumbs[n]).parent.mkdir(parents=True, exist_ok=True)
            cv2.imwrite(thumbs[n], cv2.resize(canvas.to_bgr(), THUMB_SIZE, interpolation=cv2.INTER_AREA),
                        [cv2.IMWRITE_JPEG_QUALITY, 80])
        if report is not None:
            report.add(1)
    for packet in stream.encode(None):
        container.mux(packet)
    container.close()
    os.replace(tmp, job.out)
    for r in readers.values():
        r.close()
    if report is not None:
        report.flush()
    return {
        "index": job.index,
        "frames": job.last - job.first,
        "seconds": time.perf_counter() - started,
        "decoded": {key: r.decoded for key, r in readers.items()},
        "decode_errors": {key: r.errors for key, r in readers.items() if r.errors},
    }
