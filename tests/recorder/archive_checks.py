"""What a viewer of an archive would check, as code: which classroom is large, what is heard."""

from __future__ import annotations

import json
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import av
import numpy as np
from harness import TWINCLASS, ServerProcess

from classroom_client.pattern import PatternInfo, read_pattern, source_tag

# a 320x240 (4:3) camera fills the large area as 960x720 at x=160: exactly 3x, pattern intact
LARGE_4_3 = (160, 0, 960, 720)
TAGS = {source_tag(c): c for c in ("master", "rural-1", "rural-2", "rural-3")}


@dataclass
class Seen:
    t: float
    info: PatternInfo | None

    @property
    def classroom(self) -> str | None:
        return TAGS.get(self.info.tag) if self.info else None


def large_pictures(video: Path, rect: tuple[int, int, int, int] = LARGE_4_3, step: int = 1) -> list[Seen]:
    """The test pattern read from the large area of every `step`-th frame of the archive video."""
    x, y, w, h = rect
    out = []
    with av.open(str(video)) as container:
        for i, frame in enumerate(container.decode(video=0)):
            if i % step:
                continue
            luma = frame.to_ndarray(format="gray")
            out.append(Seen(float(frame.time or 0.0), read_pattern(luma[y:y + h, x:x + w])))
    return out


def first_pattern(data: bytes, path: Path) -> PatternInfo:
    """The test pattern of the first decodable frame of a captured camera track."""
    path.write_bytes(data)
    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            info = read_pattern(frame.to_ndarray(format="gray"))
            if info is not None:
                return info
    raise AssertionError(f"{path.name}: no frame with a readable pattern")


def audio_of(video: Path) -> tuple[np.ndarray, int]:
    chunks = []
    rate = 48000
    with av.open(str(video)) as container:
        for frame in container.decode(audio=0):
            rate = frame.sample_rate
            chunks.append(frame.to_ndarray().mean(axis=0))
    return np.concatenate(chunks).astype(np.float64), rate


def tone_strength(samples: np.ndarray, rate: int, hz: float) -> float:
    """Power at `hz` relative to the median power of the spectrum (a pure tone stands out by 1000x+)."""
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(samples.shape[0])))
    freqs = np.fft.rfftfreq(samples.shape[0], 1 / rate)
    band = (freqs > hz - 3) & (freqs < hz + 3)
    return float(spectrum[band].max() / np.median(spectrum))


def onset(samples: np.ndarray, rate: int, hz: float, window_s: float = 0.01) -> float | None:
    """When a tone starts: the first 10 ms window holding a quarter of its steady level."""
    n = int(rate * window_s)
    count = samples.shape[0] // n
    t = np.arange(n) / rate
    probe = np.exp(-2j * np.pi * hz * t)
    frames = samples[: count * n].reshape(count, n)
    power = np.abs(frames @ probe)
    steady = np.median(power[power > power.max() * 0.1]) if (power > 0).any() else 0
    above = np.nonzero(power > steady * 0.25)[0]
    return float(above[0] * window_s) if above.size else None


def wait_for_recording(server: ServerProcess, token: str, *, lesson: str, status: str = "ready",
                       timeout: float = 90) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        code, body = server.api(f"/api/recordings?lesson={lesson}", token=token)
        last = body
        if code == 200:
            for rec in body["recordings"]:
                if rec["status"] == status:
                    return dict(rec)
                if rec["status"] == "failed":
                    raise AssertionError(f"archive build failed: {rec['error']}")
        time.sleep(0.5)
    raise AssertionError(f"no {status} recording of {lesson} after {timeout}s: {json.dumps(last)[:2000]}")


def cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([TWINCLASS, *args], capture_output=True, text=True, timeout=timeout)
