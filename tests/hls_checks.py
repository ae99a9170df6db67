"""Reading a live HLS stream as a player does: the playlist over HTTP, its fMP4 segments decoded."""

from __future__ import annotations

import io
import re
import urllib.error
import urllib.request
from dataclasses import dataclass

import av
import numpy as np

from classroom_client.pattern import PatternInfo, read_pattern


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes


def get(url: str, token: str | None = None) -> Answer:
    req = urllib.request.Request(url)
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return Answer(resp.status, dict(resp.headers.items()), resp.read())
    except urllib.error.HTTPError as exc:
        return Answer(exc.code, dict(exc.headers.items()), exc.read())


@dataclass
class Playlist:
    init: str  # the init segment's URI (relative to the playlist)
    segments: list[tuple[float, str]]  # (EXTINF seconds, URI)
    sequence: int


def parse_playlist(text: str) -> Playlist:
    init = re.search(r'#EXT-X-MAP:URI="([^"]+)"', text)
    sequence = re.search(r"#EXT-X-MEDIA-SEQUENCE:(\d+)", text)
    durations = [float(d) for d in re.findall(r"#EXTINF:([0-9.]+),", text)]
    uris = [line for line in text.splitlines() if line and not line.startswith("#")]
    assert init is not None and sequence is not None and len(durations) == len(uris), text
    return Playlist(init.group(1), list(zip(durations, uris, strict=True)), int(sequence.group(1)))


@dataclass
class Decoded:
    codecs: dict[str, str]  # stream type -> codec name
    patterns: list[PatternInfo]  # one per picture whose pattern checks out
    pictures: int
    samples: np.ndarray  # mono float32 audio


def decode_segment(init: bytes, segment: bytes) -> Decoded:
    """Decode one fMP4 segment (with its init segment) the way a player's MSE would get it."""
    with av.open(io.BytesIO(init + segment), format="mp4") as container:
        codecs = {s.type: s.codec_context.name for s in container.streams}
        patterns, pictures, audio = [], 0, []
        for frame in container.decode(*container.streams):
            if isinstance(frame, av.VideoFrame):
                pictures += 1
                info = read_pattern(frame.to_ndarray(format="gray"))
                if info is not None:
                    patterns.append(info)
            elif isinstance(frame, av.AudioFrame):
                audio.append(frame.to_ndarray().reshape(-1).astype(np.float32))
    return Decoded(codecs, patterns, pictures, np.concatenate(audio) if audio else np.zeros(0, np.float32))


def peak_hz(samples: np.ndarray, rate: int = 48000) -> float:
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(samples.shape[0])))
    return float(np.argmax(spectrum[1:]) + 1) * rate / samples.shape[0]


def tones_hz(samples: np.ndarray, rate: int = 48000, floor: float = 0.1) -> set[int]:
    """The frequencies (rounded to 10 Hz) whose level is at least `floor` of the strongest."""
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(samples.shape[0])))
    bins = np.flatnonzero(spectrum > floor * spectrum.max())
    return {round(b * rate / samples.shape[0] / 10) * 10 for b in bins}
