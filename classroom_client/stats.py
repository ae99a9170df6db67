"""What a classroom measured about each remote classroom it received.

`--stats-json FILE` writes (and keeps rewriting, atomically, about once a second):

    {"classroom": "<my classroom id>",
     "updated_at": <unix time>,
     "remotes": {"<classroom id>": {
         "video_fps":       frames decoded per second over the last 3 s,
         "frames_decoded":  video frames decoded in total,
         "frames_verified": decoded frames whose pattern checked out (counter, time, tag),
         "decode_errors":   decoded frames whose pattern did not check out (corrupted picture),
         "counter_gaps":    frames missing between verified counters,
         "last_counter":    the last frame counter seen,
         "audio_packets":   audio frames (20 ms packets) received,
         "audio_level_dbfs":RMS level of the last second of audio,
         "audio_peak_hz":   dominant frequency of the last second of audio,
         "latency_ms_p50", "latency_ms_p95": glass-to-glass latency of verified frames,
         "first_frame_s":   seconds from when the classroom became visible to us to its first frame,
         "width", "height": size of the last frame}}}

Pattern counters, send times and tags come from a remote running the test pattern; from a
camera or file the counters stay empty and only fps, frames and audio are measured.
"""

from __future__ import annotations

import json
import os
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from classroom_client.pattern import PatternInfo


@dataclass
class RemoteStats:
    visible_since: float = field(default_factory=time.monotonic)
    frames_decoded: int = 0
    frames_verified: int = 0
    decode_errors: int = 0
    counter_gaps: int = 0
    last_counter: int | None = None
    audio_packets: int = 0
    first_frame_s: float | None = None
    width: int = 0
    height: int = 0
    _frame_times: deque[float] = field(default_factory=lambda: deque(maxlen=600))
    _latencies: deque[float] = field(default_factory=lambda: deque(maxlen=3000))
    _audio: deque[np.ndarray] = field(default_factory=lambda: deque(maxlen=50))
    _audio_rate: int = 48000

    def mark_visible(self) -> None:
        if self.first_frame_s is None:
            self.visible_since = time.monotonic()

    def on_video_frame(self, width: int, height: int, info: PatternInfo | None, pattern_expected: bool) -> None:
        now = time.monotonic()
        self.frames_decoded += 1
        self._frame_times.append(now)
        self.width, self.height = width, height
        if self.first_frame_s is None:
            self.first_frame_s = round(now - self.visible_since, 3)
        if info is None:
            if pattern_expected:
                self.decode_errors += 1
            return
        self.frames_verified += 1
        if self.last_counter is not None and info.counter > self.last_counter + 1:
            self.counter_gaps += info.counter - self.last_counter - 1
        self.last_counter = info.counter
        latency = info.latency_ms()
        if latency < 60_000:
            self._latencies.append(latency)

    def on_audio_frame(self, samples: np.ndarray, sample_rate: int) -> None:
        self.audio_packets += 1
        self._audio.append(samples)
        self._audio_rate = sample_rate

    def video_fps(self, window_s: float = 3.0) -> float:
        if len(self._frame_times) < 2:
            return 0.0
        now = time.monotonic()
        recent = [t for t in self._frame_times if now - t <= window_s]
        if len(recent) < 2:
            return 0.0
        span = max(recent[-1] - recent[0], 1e-6)
        return round((len(recent) - 1) / span, 2)

    def audio_summary(self) -> tuple[float | None, float | None]:
        if not self._audio:
            return None, None
        x = np.concatenate(list(self._audio)).astype(np.float64) / 32768.0
        rms = float(np.sqrt(np.mean(x * x))) if x.size else 0.0
        level = round(20 * np.log10(rms), 1) if rms > 0 else -120.0
        if x.size < 256 or rms < 1e-4:
            return level, None
        spectrum = np.abs(np.fft.rfft(x * np.hanning(x.size)))
        freqs = np.fft.rfftfreq(x.size, 1.0 / self._audio_rate)
        return level, round(float(freqs[int(np.argmax(spectrum[1:])) + 1]), 1)

    def to_json(self) -> dict[str, Any]:
        lat = sorted(self._latencies)
        level, peak = self.audio_summary()
        return {
            "video_fps": self.video_fps(),
            "frames_decoded": self.frames_decoded,
            "frames_verified": self.frames_verified,
            "decode_errors": self.decode_errors,
            "counter_gaps": self.counter_gaps,
            "last_counter": self.last_counter,
            "audio_packets": self.audio_packets,
            "audio_level_dbfs": level,
            "audio_peak_hz": peak,
            "latency_ms_p50": lat[len(lat) // 2] if lat else None,
            "latency_ms_p95": lat[min(len(lat) - 1, int(len(lat) * 0.95))] if lat else None,
            "first_frame_s": self.first_frame_s,
            "width": self.width,
            "height": self.height,
        }


def write_stats(path: Path, classroom: str, remotes: dict[str, RemoteStats], extra: dict[str, Any]) -> None:
    data = {
        "classroom": classroom,
        "updated_at": time.time(),
        **extra,
        "remotes": {cid: r.to_json() for cid, r in sorted(remotes.items())},
    }
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, ensure_ascii=False))
    os.replace(tmp, path)
