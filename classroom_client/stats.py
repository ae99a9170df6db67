"""What a classroom measured about each remote classroom it received.

`--stats-json FILE` writes (and keeps rewriting, atomically, about once a second):

    {"classroom": "<my classroom id>",
     "updated_at": <unix time>,
     "server_link": the last `link` event from the server ({downlink_kbps, loss, rtt_ms, state}) or null,
     "encoder_restarts": times our VP8 encoder was rebuilt after its first start (REMB churn),
     "media_restarts": {"publish": n, "subscribe": n}: connections lost under a live session and
                       made again on it (classroom_client/recovery.py),
     "ice": {"publish"|"subscribe": the ICE candidate pair each connection uses,
             {"local": {address, port, type}, "remote": {...}}, or null before one is chosen},
     "remotes": {"<classroom id>": {
         "tier":            "full" | "low" as the server's slot info says (null: not given),
         "video_fps":       frames decoded per second over the last 3 s,
         "video_fps_mean":  frames decoded per second from its first frame to its last,
         "video_fps_min_1s":fewest frames decoded in one whole 1-s window since its first frame,
         "frames_decoded":  video frames decoded in total,
         "frames_verified": decoded frames whose pattern checked out (counter, time, tag),
         "decode_errors":   decoded frames whose pattern did not check out (corrupted picture),
                            counted only once the remote is known to send the pattern (below),
         "frames_unjudged": decoded frames before the remote's first verified one,
         "pattern_sender":  whether any of its frames verified (a test pattern, not a camera),
         "freezes":         gaps > 500 ms between consecutive decoded video frames while visible,
         "max_freeze_ms":   the longest such gap,
         "counter_gaps":    frames missing between verified counters,
         "last_counter":    the last frame counter seen,
         "audio_packets":   audio frames decoded from packets (concealed ones not included),
         "audio_concealed": audio frames concealed (a lost packet: Opus FEC or PLC),
         "audio_gaps":      holes > 100 ms in its audio (defined below),
         "audio_max_gap_ms":the longest hole,
         "audio_level_dbfs":RMS level of the last second of audio,
         "audio_peak_hz":   dominant frequency of the last second of audio,
         "bitrate_kbps":    RTP payload received on its slots over the last 3 s,
         "latency_ms_p50", "latency_ms_p95": glass-to-glass latency of verified frames,
         "first_frame_s":   seconds from when the classroom became visible to us to its first frame,
         "width", "height": size of the last frame}}}

Pattern counters, send times and tags come from a remote running the test pattern; from a
camera or file the counters stay empty and only fps, frames and audio are measured. Whether a
remote sends the pattern is decided per remote: once one of its frames verified, a frame that
does not is a decode error; frames before its first verified frame are not judged.

An audio hole is measured at each audio frame decoded from a real packet, over the stretch
since the previous real one: the larger of (a) the media time between them that was concealed
or missing (RTP timestamps) and (b) the longest wall-clock pause between two consecutive
decoded frames in that stretch (real or concealed: the stream stalled). Above 100 ms it is
one gap. A freeze or a hole still going on is counted when it ends; visibility changes (the
server gives the classroom's slot to another) restart both measures.
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

FREEZE_S = 0.5
AUDIO_GAP_S = 0.1
WINDOW_S = 3.0


@dataclass
class RemoteStats:
    visible_since: float = field(default_factory=time.monotonic)
    visible: bool = True
    tier: str | None = None
    frames_decoded: int = 0
    frames_verified: int = 0
    frames_unjudged: int = 0
    decode_errors: int = 0
    pattern_sender: bool = False
    counter_gaps: int = 0
    last_counter: int | None = None
    freezes: int = 0
    max_freeze_ms: float = 0.0
    audio_packets: int = 0
    audio_concealed: int = 0
    audio_gaps: int = 0
    audio_max_gap_ms: float = 0.0
    first_frame_s: float | None = None
    width: int = 0
    height: int = 0
    _frame_times: deque[float] = field(default_factory=lambda: deque(maxlen=600))
    _latencies: deque[float] = field(default_factory=lambda: deque(maxlen=3000))
    _audio: deque[np.ndarray] = field(default_factory=lambda: deque(maxlen=50))
    _audio_rate: int = 48000
    _bytes: deque[tuple[float, int]] = field(default_factory=deque)
    _first_frame_at: float | None = None
    _last_frame_at: float | None = None
    _window_start: float | None = None  # 1-s windows for video_fps_min_1s
    _window_frames: int = 0
    _min_1s: int | None = None
    _last_audio_at: float | None = None  # any decoded audio frame (wall clock)
    _real_audio_end: int | None = None  # media time (samples) where the last real audio frame ended
    _audio_pause: float = 0.0  # longest wall-clock pause since the last real audio frame

    def mark_visible(self) -> None:
        if self.first_frame_s is None:
            self.visible_since = time.monotonic()
        self.visible = True
        self._restart_gap_measures()

    def mark_hidden(self) -> None:
        self.visible = False
        self._restart_gap_measures()

    def _restart_gap_measures(self) -> None:
        self._last_frame_at = None
        self._window_start = None
        self._last_audio_at = None
        self._real_audio_end = None
        self._audio_pause = 0.0

    def on_video_frame(self, width: int, height: int, info: PatternInfo | None) -> None:
        now = time.monotonic()
        self.frames_decoded += 1
        self._frame_times.append(now)
        self.width, self.height = width, height
        if self.first_frame_s is None:
            self.first_frame_s = round(now - self.visible_since, 3)
        if self._first_frame_at is None:
            self._first_frame_at = now
        self._on_frame_timing(now)
        if info is None:
            if self.pattern_sender:
                self.decode_errors += 1
            else:
                self.frames_unjudged += 1
            return
        self.pattern_sender = True
        self.frames_verified += 1
        if self.last_counter is not None and info.counter > self.last_counter + 1:
            self.counter_gaps += info.counter - self.last_counter - 1
        self.last_counter = info.counter
        latency = info.latency_ms()
        if latency < 60_000:
            self._latencies.append(latency)

    def _on_frame_timing(self, now: float) -> None:
        if self._last_frame_at is not None and self.visible:
            gap = now - self._last_frame_at
            if gap > FREEZE_S:
                self.freezes += 1
                self.max_freeze_ms = max(self.max_freeze_ms, round(gap * 1000, 1))
        self._last_frame_at = now
        if self._window_start is None:
            self._window_start, self._window_frames = now, 0
        while now - self._window_start >= 1.0:  # close whole windows (an empty one counts 0)
            self._min_1s = self._window_frames if self._min_1s is None else min(self._min_1s, self._window_frames)
            self._window_start += 1.0
            self._window_frames = 0
        self._window_frames += 1

    def on_audio_frame(self, samples: np.ndarray, sample_rate: int, *, concealed: bool = False,
                       pts: int | None = None, duration: int | None = None) -> None:
        """One decoded audio frame; `pts` and `duration` in samples (48 kHz for Opus)."""
        now = time.monotonic()
        if self._last_audio_at is not None:
            self._audio_pause = max(self._audio_pause, now - self._last_audio_at)
        self._last_audio_at = now
        self._audio_rate = sample_rate
        if concealed:
            self.audio_concealed += 1
            return
        self.audio_packets += 1
        self._audio.append(samples)
        hole = self._audio_pause
        if pts is not None and self._real_audio_end is not None:
            missing = (pts - self._real_audio_end) / sample_rate
            if missing < 10.0:  # more means the media clock jumped (a new source), not 10 s lost
                hole = max(hole, missing)
        if hole > AUDIO_GAP_S and self.visible:
            self.audio_gaps += 1
            self.audio_max_gap_ms = max(self.audio_max_gap_ms, round(hole * 1000, 1))
        self._audio_pause = 0.0
        if pts is not None:
            self._real_audio_end = pts + (duration if duration is not None else samples.shape[-1])

    def on_rtp_bytes(self, count: int) -> None:
        """RTP payload bytes received on one of this classroom's slots (sampled by the caller)."""
        if count > 0:
            self._bytes.append((time.monotonic(), count))

    def bitrate_kbps(self, window_s: float = WINDOW_S) -> float:
        now = time.monotonic()
        while self._bytes and now - self._bytes[0][0] > window_s:
            self._bytes.popleft()
        return round(sum(n for _, n in self._bytes) * 8 / window_s / 1000, 1)

    def video_fps(self, window_s: float = WINDOW_S) -> float:
        if len(self._frame_times) < 2:
            return 0.0
        now = time.monotonic()
        recent = [t for t in self._frame_times if now - t <= window_s]
        if len(recent) < 2:
            return 0.0
        span = max(recent[-1] - recent[0], 1e-6)
        return round((len(recent) - 1) / span, 2)

    def video_fps_mean(self) -> float:
        if self._first_frame_at is None or self.frames_decoded < 2 or not self._frame_times:
            return 0.0
        span = max(self._frame_times[-1] - self._first_frame_at, 1e-6)
        return round((self.frames_decoded - 1) / span, 2)

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
            "tier": self.tier,
            "video_fps": self.video_fps(),
            "video_fps_mean": self.video_fps_mean(),
            "video_fps_min_1s": self._min_1s,
            "frames_decoded": self.frames_decoded,
            "frames_verified": self.frames_verified,
            "decode_errors": self.decode_errors,
            "frames_unjudged": self.frames_unjudged,
            "pattern_sender": self.pattern_sender,
            "freezes": self.freezes,
            "max_freeze_ms": self.max_freeze_ms,
            "counter_gaps": self.counter_gaps,
            "last_counter": self.last_counter,
            "audio_packets": self.audio_packets,
            "audio_concealed": self.audio_concealed,
            "audio_gaps": self.audio_gaps,
            "audio_max_gap_ms": self.audio_max_gap_ms,
            "audio_level_dbfs": level,
            "audio_peak_hz": peak,
            "bitrate_kbps": self.bitrate_kbps(),
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
