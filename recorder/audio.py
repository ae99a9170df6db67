"""The archive's sound: every classroom's microphone decoded, levelled for auto-directing, mixed to AAC.

Both passes decode the captured Opus (or PCM) packets in order and place each decoded frame at
its captured time on the video timeline, keeping consecutive frames contiguous when their
timestamps agree within a few milliseconds (so rounding never clicks).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np
from av.audio.resampler import AudioResampler

RATE = 48000
LEVEL_HZ = 10  # level samples per second (auto-directing works on 100 ms windows)
SILENCE_DB = -120.0
CONTIGUOUS_S = 0.004  # timestamps this close to where the previous frame ended: no gap


@dataclass
class AudioSource:
    """A classroom's microphone: its capture files, in order (picklable for worker processes)."""

    classroom: str
    files: list[str]
    offset: float  # add to a file timestamp (s) to get video time


def decoded_blocks(source: AudioSource) -> Iterator[tuple[int, np.ndarray]]:
    """(first sample index on the video timeline, mono float32 samples at 48 kHz), in order."""
    for path in source.files:
        try:
            container = av.open(path)
        except (av.FFmpegError, OSError):
            continue
        with container:
            stream = container.streams[0]
            tb = float(stream.time_base or 0.001)
            codec_name = stream.codec_context.name
            decoder = av.CodecContext.create(codec_name, "r")
            if stream.codec_context.extradata:
                decoder.extradata = stream.codec_context.extradata
            if codec_name != "opus":
                decoder.sample_rate = stream.codec_context.sample_rate or 8000  # type: ignore[attr-defined]
                decoder.layout = "mono"  # type: ignore[attr-defined]
            resampler = AudioResampler(format="flt", layout="mono", rate=RATE) if codec_name != "opus" else None
            expected: int | None = None
            try:
                for packet in container.demux(stream):
                    if packet.pts is None or packet.size == 0:
                        continue
                    start = round((packet.pts * tb + source.offset) * RATE)
                    if expected is not None and abs(start - expected) <= CONTIGUOUS_S * RATE:
                        start = expected
                    skip = expected - start if expected is not None and start < expected else 0
                    try:
                        frames = decoder.decode(packet)  # type: ignore[attr-defined]
                    except av.FFmpegError:
                        expected = None
                        continue
                    for frame in frames:
                        for samples in _mono48k(frame, resampler):
                            if skip:  # the clock moved back a little: never play a moment twice
                                cut = min(skip, samples.shape[0])
                                samples, start, skip = samples[cut:], start + cut, skip - cut
                            if samples.shape[0]:
                                yield start, samples
                            start += samples.shape[0]
                    expected = max(start, expected or 0)
            except (av.FFmpegError, OSError, ValueError):
                pass  # a damaged tail: keep what decoded


def _mono48k(frame: av.AudioFrame, resampler: AudioResampler | None) -> list[np.ndarray]:
    """Mono float32 at 48 kHz (Opus decodes to that already: averaging channels is enough)."""
    if resampler is None and frame.sample_rate == RATE and frame.format.name in ("flt", "fltp"):
        data = frame.to_ndarray()
        if frame.format.is_planar:
            return [data.mean(axis=0, dtype=np.float32) if data.shape[0] > 1 else data[0]]
        channels = frame.layout.nb_channels
        return [data.reshape(-1, channels).mean(axis=1, dtype=np.float32) if channels > 1 else data.reshape(-1)]
    resampler = resampler or AudioResampler(format="flt", layout="mono", rate=RATE)
    return [out.to_ndarray().reshape(-1).astype(np.float32, copy=False) for out in resampler.resample(frame)]


def levels(source: AudioSource, duration: float) -> np.ndarray:
    """Loudness in dBFS per 100 ms window over the whole video timeline (NaN where nothing was sent)."""
    n = max(1, math.ceil(duration * LEVEL_HZ))
    window = RATE // LEVEL_HZ
    energy = np.zeros(n, np.float64)
    count = np.zeros(n, np.int64)
    for start, samples in decoded_blocks(source):
        # a 20 ms frame counts towards the 100 ms window it starts in: close enough for directing
        i = start // window
        if 0 <= i < n:
            energy[i] += float(np.dot(samples, samples))
            count[i] += samples.shape[0]
    rms = np.sqrt(energy / np.maximum(count, 1))
    db = np.where(rms > 0, 20 * np.log10(np.maximum(rms, 1e-9)), SILENCE_DB)
    return np.where(count > 0, db, np.nan).astype(np.float32)


class _Cursor:
    """Feeds one source's decoded blocks into consecutive mix windows."""

    def __init__(self, source: AudioSource) -> None:
        self._blocks = decoded_blocks(source)
        self._pending: tuple[int, np.ndarray] | None = None
        self._done = False

    def add_into(self, mix: np.ndarray, start: int) -> None:
        end = start + mix.shape[0]
        while not self._done:
            if self._pending is None:
                try:
                    self._pending = next(self._blocks)
                except StopIteration:
                    self._done = True
                    return
            first, samples = self._pending
            last = first + samples.shape[0]
            a, b = max(first, start), min(last, end)
            if b > a:
                mix[a - start:b - start] += samples[a - first:b - first]
            if last > end:
                return  # the rest belongs to the next window
            self._pending = None


def mix_to_aac(sources: list[AudioSource], duration: float, out_path: Path, *, bitrate: int = 96000,
               progress: Callable[[float], None] | None = None, window_s: float = 10.0) -> None:
    """Mix every source into one mono AAC track of exactly `duration` seconds (an .mp4 file)."""
    total = max(1, round(duration * RATE))
    container = av.open(str(out_path), "w", format="mp4")
    stream = container.add_stream("aac", rate=RATE, layout="mono")
    stream.bit_rate = bitrate
    cursors = [_Cursor(s) for s in sources]
    gain = 1.0 if len(sources) <= 2 else 2.0 / len(sources) ** 0.5
    window = round(window_s * RATE)
    pts = 0
    for start in range(0, total, window):
        mix = np.zeros(min(window, total - start), np.float32)
        for cursor in cursors:
            cursor.add_into(mix, start)
        if gain != 1.0:
            mix *= gain
        np.clip(mix, -1.0, 1.0, out=mix)
        frame = av.AudioFrame.from_ndarray(mix.reshape(1, -1), format="flt", layout="mono")
        frame.sample_rate = RATE
        frame.pts = pts
        pts += mix.shape[0]
        for packet in stream.encode(frame):
            container.mux(packet)
        if progress is not None:
            progress(mix.shape[0] / RATE)
    for packet in stream.encode(None):
        container.mux(packet)
    container.close()
