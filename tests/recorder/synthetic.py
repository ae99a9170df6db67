"""A synthetic capture, written by the recorder's own writer as if a lesson had happened.

Frames are really encoded (VP8 test pattern, Opus tones) and go through `CaptureWriter` with
made-up arrival times (fake_capture.py), so the files on disk are exactly what a live capture writes.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np
from fake_capture import Timeline, write_capture_dir

from classroom_client.pattern import PatternPainter, source_tag
from recorder.capture import CapturedFrame

LESSON = {
    "id": "synth",
    "title": "合成课 Synthetic lesson",
    "subject": "音乐",
    "grade": "4",
    "master": {"id": "master", "name": "主讲 Master", "school": "A"},
    "rurals": [{"id": "rural-1", "name": "教学点一 Rural 1", "school": "B"},
               {"id": "rural-2", "name": "教学点二 Rural 2", "school": "C"}],
    "record": True,
}


@dataclass
class Classroom:
    id: str
    tone_hz: float
    joined: float = 0.0
    left: float | None = None
    loud: Callable[[float], bool] = lambda t: True  # is the tone on at time t?
    video: bool = True
    codec: str = "VP8"  # or "H264" (Annex-B access units, as a browser sends them)


@dataclass
class SyntheticLesson:
    duration: float
    classrooms: list[Classroom]
    events: list[tuple[float, str, dict[str, Any]]] = field(default_factory=list)
    fps: int = 15
    size: tuple[int, int] = (320, 240)
    keyframe_every_s: float = 5.0
    courseware: tuple[float, float] | None = None  # (on, off): the master shares slides


def _encoder(codec: str, width: int, height: int, fps: int) -> Any:
    if codec == "H264":
        enc = av.CodecContext.create("libx264", "w")
        enc.options = {"preset": "ultrafast", "tune": "zerolatency", "profile": "baseline"}
    else:
        enc = av.CodecContext.create("libvpx", "w")
        enc.options = {"deadline": "realtime", "cpu-used": "8", "lag-in-frames": "0"}
    enc.width, enc.height, enc.pix_fmt = width, height, "yuv420p"
    enc.time_base = Fraction(1, fps)
    enc.bit_rate = 400_000
    return enc


@dataclass
class CaptureParts:
    """Everything a synthetic lesson's capture holds, before it is written."""

    epoch: float
    timeline: Timeline
    kinds: dict[str, str]
    frames: list[CapturedFrame]
    end_t: float  # seconds after the epoch when the last classroom left


def capture_parts(lesson: SyntheticLesson, epoch: float | None = None) -> CaptureParts:
    epoch = epoch if epoch is not None else time.time() - lesson.duration - 60
    timeline: Timeline = []
    for c in lesson.classrooms:
        timeline.append((c.joined, "classroom_joined", {"classroom": c.id, "name": c.id, "role": "?"}))
        if c.left is not None:
            timeline.append((c.left, "classroom_left", {"classroom": c.id, "name": c.id, "reason": "left"}))
    timeline += lesson.events
    if lesson.courseware:
        timeline.append((lesson.courseware[0], "courseware", {"on": True, "classroom": "master"}))
        timeline.append((lesson.courseware[1], "courseware", {"on": False, "classroom": "master"}))
    kinds = {f"{c.id}:{s}": k for c in lesson.classrooms for s, k in (("camera", "video"), ("mic", "audio"))}
    kinds["master:courseware"] = "video"
    frames: list[CapturedFrame] = []
    w, h = lesson.size
    for c in lesson.classrooms:
        end = lesson.duration if c.left is None else c.left
        start = c.joined + 0.4  # media arrives a little after the join
        if c.video:
            frames += _video_frames(f"{c.id}:camera", c.id, start, end, lesson, epoch, w, h, c.codec)
        frames += _audio_frames(f"{c.id}:mic", c, start, end, epoch)
    if lesson.courseware:
        frames += _video_frames("master:courseware", "slides", lesson.courseware[0] + 0.2, lesson.courseware[1],
                                lesson, epoch, 640, 360)
    end_t = max((c.left or lesson.duration) for c in lesson.classrooms)
    return CaptureParts(epoch, timeline, kinds, frames, end_t)


def write_capture(directory: Path, lesson: SyntheticLesson, *, complete: bool = True,
                  epoch: float | None = None) -> float:
    """Write ``directory/capture``; returns the epoch (unix time of t = 0)."""
    parts = capture_parts(lesson, epoch)
    write_capture_dir(directory, lesson=LESSON, epoch=parts.epoch, timeline=parts.timeline, kinds=parts.kinds,
                      frames=parts.frames, ended_at=parts.epoch + parts.end_t if complete else None)
    return parts.epoch


def _video_frames(key: str, label: str, start: float, end: float, lesson: SyntheticLesson, epoch: float,
                  w: int, h: int, codec: str = "VP8") -> list[CapturedFrame]:
    painter = PatternPainter(w, h, label, source_tag(label if label != "slides" else "master/courseware"))
    enc = _encoder(codec, w, h, lesson.fps)
    out = []
    n = int((end - start) * lesson.fps)
    every = int(lesson.keyframe_every_s * lesson.fps)
    for i in range(n):
        t = start + i / lesson.fps
        img = painter.paint(i, sent_ms=int((epoch + t) * 1000))
        frame = av.VideoFrame.from_ndarray(img, format="bgr24").reformat(format="yuv420p")
        frame.pts = i
        if every and i % every == 0:
            frame.pict_type = av.video.frame.PictureType.I
        for packet in enc.encode(frame):
            ts = round((packet.pts or i) * 90000 / lesson.fps)
            out.append(CapturedFrame(key, codec, 90000, bytes(packet), ts, epoch + t + 0.04))
    return out


def _audio_frames(key: str, c: Classroom, start: float, end: float, epoch: float) -> list[CapturedFrame]:
    enc = av.CodecContext.create("libopus", "w")
    enc.sample_rate, enc.layout, enc.format = 48000, "mono", "s16"
    enc.bit_rate = 32000
    out = []
    n = int((end - start) / 0.02)
    k = np.arange(960)
    for i in range(n):
        t = start + i * 0.02
        on = c.loud(t)
        wave = np.sin(2 * math.pi * c.tone_hz * (k + i * 960) / 48000) * (0.3 if on else 0.002)
        frame = av.AudioFrame.from_ndarray((wave * 32767).astype(np.int16).reshape(1, -1), format="s16",
                                           layout="mono")
        frame.sample_rate = 48000
        frame.pts = i * 960
        for packet in enc.encode(frame):
            out.append(CapturedFrame(key, "opus", 48000, bytes(packet), int(packet.pts or i * 960),
                                     epoch + t + 0.1))
    return out


def read_events(directory: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (directory / "capture" / "events.jsonl").read_text().splitlines()]
