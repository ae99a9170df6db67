"""One chunk's sound: each microphone decoded over the chunk's span (plus pre-roll) once, giving

- its loudness per 100 ms (the director's input),
- its voice activity per 30 ms (webrtcvad, the classroom analysis' input),
- the chunk's share of the AAC mix.

All three depend only on the packets of the span, so a chunk built live equals one built later.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from recorder.analysis import VoiceActivity
from recorder.audio import AAC_FRAME, LEVEL_HZ, RATE, AudioSource, add_blocks, decoded_blocks, encode_aac, window_levels
from recorder.chunks import AAC_PREROLL, CHUNK_S, VAD_FRAME_S, VAD_PREROLL_S, Span


@dataclass
class AudioChunkJob:
    span: Span
    sources: list[AudioSource]
    duration: float
    gain: float
    out: str  # .mp4 (AAC)
    npz: str  # levels and voice activity per classroom
    vad_mode: int = 3


def _cut(blocks: list[tuple[int, np.ndarray]], a: int, b: int) -> list[tuple[int, np.ndarray]]:
    out = []
    for start, samples in blocks:
        lo, hi = max(start, a), min(start + samples.shape[0], b)
        if hi > lo:
            out.append((lo, samples[lo - start:hi - start]))
    return out


def decode_from(span: Span) -> int:
    """The first sample a chunk's sound is decoded from: its own, less the pre-roll of the AAC
    encoder and of the voice activity detector. Whatever reads a chunk's levels decodes from
    here, so the blocks (their placement on the timeline) are the same."""
    mix_from = max(0, span.samples(0)[0] - AAC_PREROLL * AAC_FRAME)
    vad_first = span.index * round(CHUNK_S / VAD_FRAME_S)
    pre = min(vad_first, round(VAD_PREROLL_S / VAD_FRAME_S))
    vad_a = round((vad_first - pre) * VAD_FRAME_S * RATE)
    level_a = span.index * round(CHUNK_S * LEVEL_HZ) * (RATE // LEVEL_HZ)
    return min(mix_from, level_a, round(span.start * RATE), vad_a)


def render_audio_chunk(job: AudioChunkJob) -> dict[str, Any]:
    started = time.perf_counter()
    span = job.span
    total = max(1, round(job.duration * RATE))
    keep = span.samples(total)
    mix_from = max(0, keep[0] - AAC_PREROLL * AAC_FRAME)
    mix_until = total if keep[1] is None else min(total, keep[1] + AAC_PREROLL * AAC_FRAME)
    level_first, level_count = span.level_windows(job.duration)
    window = RATE // LEVEL_HZ
    a = decode_from(span)
    b = max(mix_until, (level_first + level_count) * window, round(span.end * RATE))
    vad_first, vad_count = span.vad_frames(job.duration)
    # webrtcvad adapts to each microphone: it starts on the seconds before the chunk, as it would
    # have run through them, and its decisions there are dropped
    pre = min(vad_first, round(VAD_PREROLL_S / VAD_FRAME_S))
    vad_a = round((vad_first - pre) * VAD_FRAME_S * RATE)
    mix = np.zeros(max(0, mix_until - mix_from), np.float32)
    arrays: dict[str, np.ndarray] = {}
    for source in job.sources:
        blocks = list(decoded_blocks(source, since_s=a / RATE, until_s=b / RATE))
        arrays[f"levels:{source.classroom}"] = window_levels(blocks, level_first, level_count)
        vad = VoiceActivity(RATE, (pre + vad_count) * VAD_FRAME_S, job.vad_mode)
        for start, samples in _cut(blocks, vad_a, vad_a + round((pre + vad_count) * VAD_FRAME_S * RATE)):
            vad.feed(start - vad_a, samples)
        vad.finish()
        arrays[f"speech:{source.classroom}"] = vad.speech[pre:pre + vad_count]
        add_blocks(mix, mix_from, blocks)
    if job.gain != 1.0:
        mix *= job.gain
    np.clip(mix, -1.0, 1.0, out=mix)
    tmp = Path(job.out + ".tmp.mp4")
    packets = encode_aac(mix, mix_from, keep, tmp)
    tmp.replace(job.out)
    tmp_npz = Path(job.npz + ".tmp.npz")
    np.savez(tmp_npz, **arrays)  # type: ignore[arg-type]
    tmp_npz.replace(job.npz)
    return {"index": span.index, "packets": packets, "first_pts": keep[0], "seconds": time.perf_counter() - started}


def load_arrays(path: Path) -> dict[str, np.ndarray]:
    with np.load(path) as data:
        return {k: data[k] for k in data.files}
