"""The archive's sound: every classroom's microphone decoded, levelled for auto-directing, mixed to AAC.

Both passes decode the captured Opus (or PCM) packets in order and place each decoded frame at
its captured time on the video timeline, keeping consecutive frames contiguous when their
timestamps agree within a few milliseconds (so rounding never clicks).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np
from av.audio.resampler import AudioResampler

RATE = 48000
LEVEL_HZ = 10  # level samples per second (auto-directing works on 100 ms windows)
SILENCE_DB = -120.0
CONTIGUOUS_S = 0.004  # timestamps this close to where the previous frame ended: no gap
PREROLL_S = 0.1  # decoding a window starts this much earlier (Opus settles within 80 ms)
AAC_FRAME = 1024  # samples per AAC packet


@dataclass
class AudioSource:
    """A classroom's microphone: its capture files, in order (picklable for worker processes)."""

    classroom: str
    files: list[str]
    offset: float  # add to a file timestamp (s) to get video time


def decoded_blocks(source: AudioSource, since_s: float | None = None,
                   until_s: float | None = None) -> Iterator[tuple[int, np.ndarray]]:
    """(first sample index on the video timeline, mono float32 samples at 48 kHz), in order.

    With `since_s`/`until_s` only packets from a little before `since_s` (the decoder's
    pre-roll) up to `until_s` are decoded; the rest is demuxed and skipped, which costs little.
    The result then depends only on the packets of that window, so a window decoded while
    the lesson is being recorded equals the same window decoded after it.
    """
    first_s = None if since_s is None else since_s - PREROLL_S
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
            if first_s is not None:  # skip what comes before in C (the matroska demuxer seeks without cues too)
                with contextlib.suppress(av.FFmpegError, OSError, ValueError):
                    container.seek(max(0, int((first_s - source.offset - 1.0) / tb)), stream=stream, backward=True,
                                   any_frame=True)
            try:
                for packet in container.demux(stream):
                    if packet.pts is None or packet.size == 0:
                        continue
                    at = packet.pts * tb + source.offset
                    if until_s is not None and at >= until_s:
                        break
                    if first_s is not None and at < first_s:
                        continue
                    start = round(at * RATE)
                    if expected is not None and abs(start - expected) <= CONTIGUOUS_S * RATE:
                        start = expected
                    skip = expected - start if expected is not None and start < expected else 0
                    try:
                        frames = decoder.decode(packet)  # type: ignore[attr-defined]
                    except av.FFmpegError:
                        expected = None
                        continue
                    for frame in frames:
                        for samples in mono48k(frame, resampler):
                            if skip:  # the clock moved back a little: never play a moment twice
                                cut = min(skip, samples.shape[0])
                                samples, start, skip = samples[cut:], start + cut, skip - cut
                            if samples.shape[0]:
                                yield start, samples
                            start += samples.shape[0]
                    expected = max(start, expected or 0)
            except (av.FFmpegError, OSError, ValueError):
                pass  # a damaged tail: keep what decoded


def mono48k(frame: av.AudioFrame, resampler: AudioResampler | None) -> list[np.ndarray]:
    """Mono float32 at 48 kHz (Opus decodes to that already: averaging channels is enough)."""
    if resampler is None and frame.sample_rate == RATE and frame.format.name in ("flt", "fltp"):
        data = frame.to_ndarray()
        if frame.format.is_planar:
            return [data.mean(axis=0, dtype=np.float32) if data.shape[0] > 1 else data[0]]
        channels = frame.layout.nb_channels
        return [data.reshape(-1, channels).mean(axis=1, dtype=np.float32) if channels > 1 else data.reshape(-1)]
    resampler = resampler or AudioResampler(format="flt", layout="mono", rate=RATE)
    return [out.to_ndarray().reshape(-1).astype(np.float32, copy=False) for out in resampler.resample(frame)]


def window_levels(blocks: list[tuple[int, np.ndarray]], first: int, count: int) -> np.ndarray:
    """Loudness in dBFS of the 100 ms windows first .. first+count (NaN where nothing was sent).

    A 20 ms frame counts towards the window it starts in: close enough for directing."""
    window = RATE // LEVEL_HZ
    energy = np.zeros(count, np.float64)
    n = np.zeros(count, np.int64)
    for start, samples in blocks:
        i = start // window - first
        if 0 <= i < count:
            energy[i] += float(np.dot(samples, samples))
            n[i] += samples.shape[0]
    rms = np.sqrt(energy / np.maximum(n, 1))
    db = np.where(rms > 0, 20 * np.log10(np.maximum(rms, 1e-9)), SILENCE_DB)
    return np.where(n > 0, db, np.nan).astype(np.float32)


def add_blocks(mix: np.ndarray, start: int, blocks: list[tuple[int, np.ndarray]]) -> None:
    """Add the parts of `blocks` that fall in mix's samples [start, start + len(mix))."""
    end = start + mix.shape[0]
    for first, samples in blocks:
        a, b = max(first, start), min(first + samples.shape[0], end)
        if b > a:
            mix[a - start:b - start] += samples[a - first:b - first]


def mix_gain(classrooms: int) -> float:
    """Fixed by the lesson's classroom count (not by who joined yet), so every chunk mixes alike."""
    return 1.0 if classrooms <= 2 else 2.0 / classrooms ** 0.5


def encode_aac(mix: np.ndarray, start: int, keep: tuple[int, int | None], out_path: Path, *,
               bitrate: int = 96000) -> int:
    """Encode samples [start, start + len(mix)) to AAC in an .mp4 of its own; returns the packets kept.

    Only packets whose time (in samples on the lesson timeline) is in keep = [from, until)
    are kept (until None: to the end). What lies outside is pre-roll and post-roll that warm
    the encoder up and let it finish the last kept packet, so consecutive chunks, each encoded
    on its own, join without a gap or a click. `from` and `until` are multiples of AAC_FRAME."""
    container = av.open(str(out_path), "w", format="mp4")
    stream = container.add_stream("aac", rate=RATE, layout="mono")
    stream.bit_rate = bitrate
    keep_from, keep_until = keep
    kept = 0

    def mux(packets: list[av.Packet]) -> None:
        nonlocal kept
        for packet in packets:
            pts = packet.pts if packet.pts is not None else 0
            if pts >= keep_from and (keep_until is None or pts < keep_until):
                container.mux(packet)
                kept += 1

    step = RATE  # a second at a time
    for a in range(0, mix.shape[0], step):
        part = np.ascontiguousarray(mix[a:a + step])
        frame = av.AudioFrame.from_ndarray(part.reshape(1, -1), format="flt", layout="mono")
        frame.sample_rate = RATE
        frame.pts = start + a
        mux(list(stream.encode(frame)))
    mux(list(stream.encode(None)))
    container.close()
    return kept
