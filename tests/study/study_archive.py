"""A recording directory as the recorder writes it, from synthetic classroom sound (imported as `study_archive`).

The capture goes through the recorder's own `CaptureWriter` (Opus microphones, a VP8 camera; see
fake_capture.py), so the files are what a live lesson leaves on disk; `build` then runs the
recorder's archive build (lesson.mp4 + manifest.json) and `register` adds the catalog row the way
the recorder does.
"""

from __future__ import annotations

import time
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np
from fake_capture import Timeline, write_capture_dir

from recorder.capture import CapturedFrame

RATE = 48000
ARCHIVE_ID = "study-synth-20261123-100000"  # the recording the browser and API tests open

LESSON: dict[str, Any] = {
    "id": "study-synth",
    "title": "英语 三年级 · 天气单词（同步课堂）",
    "subject": "英语",
    "grade": "3",
    "master": {"id": "master", "name": "实验小学 李老师", "school": "城关实验小学"},
    "rurals": [{"id": "rural-1", "name": "山口教学点", "school": "山口教学点"},
               {"id": "rural-2", "name": "河西村小", "school": "河西村小"}],
    "record": True,
    "extra": {"county": "青山县", "teacher_name": "李老师"},
}


def _opus_frames(key: str, pcm: np.ndarray, epoch: float) -> list[CapturedFrame]:
    enc = av.CodecContext.create("libopus", "w")
    enc.sample_rate, enc.layout, enc.format = RATE, "mono", "s16"  # type: ignore[attr-defined]
    enc.bit_rate = 32000
    out = []
    n = pcm.shape[0] // 960
    for i in range(n):
        frame = av.AudioFrame.from_ndarray(pcm[i * 960:(i + 1) * 960].reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = RATE
        frame.pts = i * 960
        for packet in enc.encode(frame):  # type: ignore[attr-defined]
            ts = int(packet.pts if packet.pts is not None else i * 960)
            out.append(CapturedFrame(key, "opus", RATE, bytes(packet), ts, epoch + ts / RATE + 0.1))
    return out


def _vp8_frames(key: str, duration: float, epoch: float, fps: int = 10, size: tuple[int, int] = (160, 120)) -> list[
        CapturedFrame]:
    w, h = size
    enc = av.CodecContext.create("libvpx", "w")
    enc.width, enc.height, enc.pix_fmt = w, h, "yuv420p"  # type: ignore[attr-defined]
    enc.time_base = Fraction(1, fps)
    enc.bit_rate = 150_000
    enc.options = {"deadline": "realtime", "cpu-used": "8", "lag-in-frames": "0"}
    out = []
    yy, xx = np.mgrid[0:h, 0:w]
    for i in range(int(duration * fps)):
        img = np.zeros((h, w, 3), np.uint8)
        img[..., 0] = (xx * 255 // w + i * 4) % 256
        img[..., 1] = (yy * 255 // h) % 256
        img[..., 2] = 120
        frame = av.VideoFrame.from_ndarray(img, format="rgb24").reformat(format="yuv420p")
        frame.pts = i
        if i % (fps * 2) == 0:
            frame.pict_type = av.video.frame.PictureType.I
        for packet in enc.encode(frame):  # type: ignore[attr-defined]
            ts = round((packet.pts if packet.pts is not None else i) * 90000 / fps)
            out.append(CapturedFrame(key, "VP8", 90000, bytes(packet), ts, epoch + ts / 90000 + 0.04))
    return out


def write_capture(directory: Path, mics: dict[str, np.ndarray], events: Timeline,
                  *, lesson: dict[str, Any] | None = None, camera: str | None = "master",
                  epoch: float | None = None) -> float:
    """``directory/capture`` for a lesson of len(any mic) seconds; returns its epoch (unix time of 0)."""
    duration = max(p.shape[0] for p in mics.values()) / RATE
    epoch = epoch if epoch is not None else time.time() - duration - 120
    timeline: Timeline = [(0.0, "classroom_joined", {"classroom": c, "name": c, "role": "?"}) for c in mics]
    timeline += events
    timeline += [(duration, "classroom_left", {"classroom": c, "name": c, "reason": "left"}) for c in mics]
    kinds = {f"{c}:mic": "audio" for c in mics}
    frames: list[CapturedFrame] = []
    for c, pcm in mics.items():
        frames += _opus_frames(f"{c}:mic", pcm, epoch)
    if camera:
        kinds[f"{camera}:camera"] = "video"
        frames += _vp8_frames(f"{camera}:camera", duration, epoch)
    write_capture_dir(directory, lesson=lesson or LESSON, epoch=epoch, timeline=timeline, kinds=kinds,
                      frames=frames, ended_at=epoch + duration)
    return epoch


def build(directory: Path) -> dict[str, Any]:
    from recorder.build import BuildOptions, build_archive

    return build_archive(directory, BuildOptions(fps=5, workers=1))


def register(data_dir: Path, directory: Path) -> str:
    """Add the catalog row for an archive under ``data_dir/recordings`` (as the recorder's recovery does)."""
    from recorder.catalog import RecordingCatalog
    from recorder.service import record_from_disk
    from sfu.store import make_engine, sqlite_url

    record = record_from_disk(directory)
    RecordingCatalog(make_engine(sqlite_url(data_dir))).save(record)
    return record.id
