"""Synthetic classroom speech for the analysis tests: espeak-ng utterances laid out on per-classroom
tracks, with the ground truth (when each classroom really speaks) kept alongside (imported as `study_speech`)."""

from __future__ import annotations

import shutil
import subprocess
import wave
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

RATE = 48000

MASTER_LINES = [
    "同学们好，今天我们一起学习关于天气的英语单词。",
    "请大家看屏幕，这是太阳，sunny，晴天。",
    "下雨的时候我们说 rainy，请跟我读一遍。",
    "很好，现在我们来看下一张图片，这是什么天气？",
    "对了，这是多云，cloudy，大家说得很准确。",
    "接下来请听录音，然后回答我的问题。",
]
RURAL_LINES = [
    "老师好，我们觉得是晴天，sunny。",
    "It is rainy today, 今天下雨。",
    "我们一起读：cloudy，cloudy。",
    "老师，我们还想学雪天怎么说。",
]


def espeak_available() -> bool:
    return shutil.which("espeak-ng") is not None


def utterance(text: str, workdir: Path, voice: str = "cmn", speed: int = 160, pitch: int = 50) -> np.ndarray:
    """One utterance as int16 at 48 kHz, leading/trailing silence trimmed."""
    workdir.mkdir(parents=True, exist_ok=True)
    path = workdir / f"u{abs(hash((text, voice, speed, pitch)))}.wav"
    if not path.exists():
        subprocess.run(["espeak-ng", "-v", voice, "-s", str(speed), "-p", str(pitch), "-w", str(path), text],
                       check=True, capture_output=True)
    with wave.open(str(path)) as w:
        rate = w.getframerate()
        x = np.frombuffer(w.readframes(w.getnframes()), np.int16).astype(np.float32)
    t_out = np.arange(int(len(x) * RATE / rate)) / RATE
    y = np.interp(t_out, np.arange(len(x)) / rate, x)
    loud = np.flatnonzero(np.abs(y) > 300)
    y = y[loud[0]:loud[-1] + 1] if loud.size else y[:0]
    return y.astype(np.int16)


@dataclass
class Track:
    """One classroom's microphone: int16 samples at 48 kHz and where speech was placed."""

    pcm: np.ndarray
    spoken: list[tuple[float, float]] = field(default_factory=list)

    @property
    def speaking_s(self) -> float:
        return sum(b - a for a, b in self.spoken)


def fill(track: Track, lines: list[np.ndarray], start: float, end: float, gap_s: float = 0.25) -> int:
    """Place utterances one after another in [start, end); returns how many fitted."""
    t = start
    i = 0
    while True:
        clip = lines[i % len(lines)]
        d = clip.shape[0] / RATE
        if t + d > end:
            # cut the last one to end exactly at `end` (so the blocks hit the planned proportion)
            n = int((end - t) * RATE)
            if n > RATE // 2:
                a = int(t * RATE)
                track.pcm[a:a + n] = clip[:n]
                track.spoken.append((t, t + n / RATE))
                i += 1
            return i
        a = int(t * RATE)
        track.pcm[a:a + clip.shape[0]] = clip
        track.spoken.append((t, t + d))
        t += d + gap_s
        i += 1


def room_noise(n: int, level: float = 60.0, seed: int = 1) -> np.ndarray:
    """A quiet classroom: low broadband noise (pupils writing, a fan), far below speech."""
    rng = np.random.default_rng(seed)
    return (rng.standard_normal(n) * level).astype(np.int16)


def seventy_thirty(workdir: Path, duration: float = 120.0, block: float = 20.0,
                   master_share: float = 0.7) -> tuple[Track, Track]:
    """Master speaks `master_share` of every block, the rural classroom the rest, alternating."""
    n = int(duration * RATE)
    master = Track(room_noise(n, seed=1))
    rural = Track(room_noise(n, seed=2))
    m_lines = [utterance(s, workdir, "cmn", 165, 45) for s in MASTER_LINES]
    r_lines = [utterance(s, workdir, "cmn", 150, 75) for s in RURAL_LINES]
    t = 0.0
    k = 0
    while t < duration - 1e-6:
        m_end = min(duration, t + block * master_share)
        b_end = min(duration, t + block)
        fill(master, m_lines[k % len(m_lines):] + m_lines[:k % len(m_lines)], t, m_end)
        fill(rural, r_lines[k % len(r_lines):] + r_lines[:k % len(r_lines)], m_end, b_end)
        t = b_end
        k += 1
    return master, rural
